"""Training across processes (``train.devices``, ``train.strategy``; issue 12 §4) and data
placement for a GPU (pinned host memory or data kept on the device)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from saca_lab import tracking
from saca_lab.config import load_config
from saca_lab.datasets.datamodules import (
    DEVICE_DATA_SHARE,
    BatchedTensors,
    SpectraDataModule,
    collate_batch,
    loader_placement,
)
from saca_lab.runtime import device_count, resolve_strategy
from saca_lab.training.run import run_experiment

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "trcsl_1d_pretrain_slag.yaml"


def test_strategy_auto_spawns_ranks_for_several_devices_only():
    assert resolve_strategy("auto", 1, "cpu") == "auto"
    assert resolve_strategy("auto", 2, "cpu") == "ddp_spawn"
    assert resolve_strategy("auto", [0, 1], "gpu") == "ddp_spawn"
    assert resolve_strategy("auto", "0,1", "gpu") == "ddp_spawn"
    assert resolve_strategy("auto", "auto", "cpu") == "auto"  # one CPU device, as Lightning
    assert resolve_strategy("ddp", 2, "cpu") == "ddp"  # an explicit choice is kept
    assert resolve_strategy("ddp", 1, "cpu") == "ddp"
    assert device_count("3") == 3 and device_count([1]) == 1


def test_strategy_reaches_the_trainer(train_data, mlflow_tmp, monkeypatch):
    import lightning.pytorch as pl

    seen = {}

    class Stop(Exception):
        pass

    def spy(self, *args, **kwargs):
        seen.update(strategy=type(self.strategy).__name__, world_size=self.world_size,
                    start=self.strategy._start_method)
        raise Stop

    monkeypatch.setattr(pl.Trainer, "fit", spy)
    cfg = load_config(EXPERIMENT, [f"data.dataset={train_data['slag']}", "data.shots=5",
                                   "train.accelerator=cpu", "train.devices=2"])
    with pytest.raises(Stop):
        run_experiment(cfg, progress=False)
    assert seen == {"strategy": "SpawnDDPStrategy", "world_size": 2, "start": "spawn"}


def _fit(train_data, devices: int, batch: int) -> dict:
    cfg = load_config(EXPERIMENT, [
        f"data.dataset={train_data['slag']}", "data.shots=5", "train.max_epochs=3",
        "train.accelerator=cpu", "train.precision=32-true", "tracking.log_model=false",
        f"train.devices={devices}", f"data.batch_size={batch}",
        # dropout draws other masks for two half-batches than for one whole batch
        "model.overrides={dropout: 0.0}", f"tracking.experiment=ddp{devices}"])
    return run_experiment(cfg, progress=False)


# ~20 s on 2 idle cores (two fits; the spawned ranks import torch, Lightning and MLflow)
def test_two_cpu_processes_train_as_one(train_data, mlflow_tmp):
    """DDP over 2 gloo ranks, each with half of the one process's batch, takes the same steps.

    The batch holds every training item (12 spectra), so one process and the two ranks see the
    same items per step whatever order either sampler draws; DDP averages the ranks' gradients
    of their half-batch means, which is the gradient of the whole batch's mean. The weights
    then differ only by float summation order: measured here, at most 6e-7 after 3 epochs
    (Adam, lr 1e-3), and the test metrics agreed to all printed digits. The tolerance below
    (rtol 1e-4 on the metrics, 1e-5 on the weights) leaves room for another BLAS.
    """
    one = _fit(train_data, 1, 64)
    two = _fit(train_data, 2, 32)
    assert one.test.keys() == two.test.keys()
    for key, value in one.test.items():
        np.testing.assert_allclose(two.test[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    for key, value in one.test_sample.items():
        np.testing.assert_allclose(two.test_sample[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    a = torch.load(one.checkpoint, weights_only=False)["state_dict"]
    b = torch.load(two.checkpoint, weights_only=False)["state_dict"]
    init = {}  # the weights did move: the comparison is not of two untrained networks
    for k, v in a.items():
        if v.dtype.is_floating_point and v.numel():
            torch.testing.assert_close(b[k], v, rtol=1e-5, atol=1e-5, msg=k)
            init[k] = v
    assert init
    # one MLflow run per fit, tested and logged once by rank 0 / the calling process
    client = tracking.client()
    runs = client.search_runs([client.get_experiment_by_name("ddp2").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == two.run_id
    assert runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(two.run_id, "test_r2_mean")) == 1
    assert len(client.get_metric_history(two.run_id, "test_sample_r2_Mn")) == 1
    assert len(client.get_metric_history(two.run_id, "train_loss")) == 3  # one per epoch
    checkpoints = [a.path for a in client.list_artifacts(two.run_id, "checkpoints")]
    assert checkpoints == ["checkpoints/model.ckpt"]
    assert sorted(p.name for p in Path(two.checkpoint).parent.iterdir()) == ["best.ckpt", "model.ckpt"]


@pytest.mark.slow  # two `saca-lab train` processes and a reference fit: 20 s idle, minutes under load
def test_ddp_reruns_the_command_and_rank_zero_reports_once(train_data, mlflow_tmp):
    """``train.strategy: ddp`` launches the command again for rank 1 (Lightning's subprocess
    launcher); that rank returns after fit, and rank 0 alone tests, logs and prints."""
    import os
    import subprocess
    import sys

    cli = Path(sys.executable).with_name("saca-lab")
    sets = [f"data.dataset={train_data['slag']}", "data.shots=5", "train.max_epochs=3",
            "train.accelerator=cpu", "train.precision=32-true", "train.devices=2",
            "train.strategy=ddp", "tracking.log_model=false", "data.batch_size=32",
            "model.overrides={dropout: 0.0}", "tracking.experiment=ddp-cli"]
    done = subprocess.run([str(cli), "train", str(EXPERIMENT), "--quiet",
                           *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run ") == 1 and done.stdout.count("test R2") == 4
    client = tracking.client()  # this test's store (mlflow's module state may hold another's)
    runs = client.search_runs([client.get_experiment_by_name("ddp-cli").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(client.get_metric_history(runs[0].info.run_id, "test_r2_mean")) == 1
    one = _fit(train_data, 1, 64)
    np.testing.assert_allclose(runs[0].data.metrics["test_r2_mean"], one.test["test_r2_mean"],
                               rtol=1e-4)


# --- data placement ----------------------------------------------------------------------------

def test_loaders_stay_on_the_host_without_cuda():
    assert loader_placement(None, 10) == {"pin_memory": False, "on_device": False}
    assert loader_placement(torch.device("cpu"), 10) == {"pin_memory": False, "on_device": False}


def test_cuda_keeps_data_on_the_device_where_it_fits_else_pins(monkeypatch):
    free = 8 << 30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    cuda = torch.device("cuda", 0)
    assert loader_placement(cuda, 65 << 20) == {"pin_memory": False, "on_device": True}
    too_big = int(DEVICE_DATA_SHARE * free) + 1
    assert loader_placement(cuda, too_big) == {"pin_memory": True, "on_device": False}
    # workers cannot share CUDA tensors; under DDP each rank reads its own shard of the host data
    assert loader_placement(cuda, 10, num_workers=2) == {"pin_memory": True, "on_device": False}
    assert loader_placement(cuda, 10, world_size=2) == {"pin_memory": True, "on_device": False}


def test_datamodule_asks_the_trainers_device(train_data, monkeypatch):
    from types import SimpleNamespace

    dm = SpectraDataModule(str(train_data["slag"]), targets=["Mn"], input_kind="lines_1d",
                           shots=5, batch_size=4)
    dm.prepare_data()
    dm.setup()
    loader = dm.train_dataloader()  # no trainer: CPU defaults, no workers
    assert not loader.pin_memory and loader.num_workers == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1, 1))  # nothing fits
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)),
                                 world_size=1)
    assert dm.train_dataloader().pin_memory


def test_batched_fetch_gives_the_per_item_batches(train_data):
    dm = SpectraDataModule(str(train_data["slag"]), targets=["Mn", "Cr"], input_kind="lines_1d",
                           shots=5, batch_size=5)
    dm.prepare_data()
    dm.setup()
    data = dm.tensors("train")
    assert isinstance(data, BatchedTensors)
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data.tensors), batch_size=5,
                                        shuffle=True, generator=torch.Generator().manual_seed(0))
    ours = dm.train_dataloader()
    assert ours.collate_fn is collate_batch
    batches = list(ours)
    assert len(batches) == len(plain) > 1
    for got, want in zip(batches, plain, strict=True):
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g, w)


def test_spawned_rank_leaves_the_process_group_after_its_work(tmp_path, monkeypatch):
    """The spawn launcher's per-rank function hands its result back, then leaves the group (a
    rank exiting with gloo's threads alive can abort: SIGABRT seen in CI)."""
    import queue

    import torch.distributed as dist

    from saca_lab.training.spawn import SpawnDDPStrategy, _LeavingLauncher

    # as set: Lightning's launcher otherwise sets this process's threads and OMP_NUM_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    try:
        results = queue.Queue()
        launcher = _LeavingLauncher(SpawnDDPStrategy(parallel_devices=[torch.device("cpu")]),
                                    start_method="spawn")
        launcher._wrapping_function(0, None, lambda: 42, (), {}, results)
        assert results.get_nowait() == 42
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
