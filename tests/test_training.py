"""Training, transfer, tracking and prediction (issue: models / Lightning / MLflow)."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch import Callback

from saca_lab.cli import main
from saca_lab.config import load_config
from saca_lab.datasets.datamodules import SpectraDataModule
from saca_lab.datasets.splits import kfold_split, ratio_split
from saca_lab.errors import InputError
from saca_lab.training.predictor import Predictor
from saca_lab.training.reporting import per_sample_metrics
from saca_lab.training.run import run_experiment

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))


def _dataset_for(path: Path, train_data, request):
    name = path.stem
    if "stainless" in name:
        return str(request.getfixturevalue("stainless_data"))
    if "geostandards" in name:
        return str(request.getfixturevalue("geostandards"))
    return str(train_data["carbon-steel" if "carbon_steel" in name else "slag"])


def _quick(path, dataset, extra=()):
    sets = ["train.fast_dev_run=true", "data.shots=average"] + ([f"data.dataset={dataset}"] if dataset else [])
    return load_config(path, [*sets, *extra])


@pytest.fixture
def geostandards(real_data, tmp_path):
    out = tmp_path / "geo"
    assert main(["import", str(real_data / "libs_geostandards_sio2.csv"), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_runs_fast_dev_run(path, train_data, mlflow_tmp, request):
    dataset = _dataset_for(path, train_data, request)
    cfg = _quick(path, dataset)
    if cfg["transfer"]:
        source = cfg["transfer"]["from"].split(":", 1)[1]
        pre = _quick(path.with_name(f"{source}.yaml"), str(train_data["slag"]))
        run_experiment(pre, progress=False)
    result = run_experiment(cfg, progress=False)
    assert result.run_id and Path(result.checkpoint).is_file()
    assert all(np.isfinite(v) for v in result.test_sample.values())
    pred = result.predictions  # the one test pass every test metric and the figure came from
    assert pred.y_pred.shape == pred.y_true.shape == (len(pred.groups), len(result.targets))
    assert per_sample_metrics(pred.y_true, pred.y_pred, pred.groups, result.targets) == result.test_sample


def test_splits_never_share_a_sample(train_data):
    for split in (ratio_split(20, 0.7, 0.15, 0.15, seed=3), kfold_split(20, 5, 2, seed=3, val=0.1)):
        parts = [set(split.train), set(split.val), set(split.test)]
        assert sum(len(p) for p in parts) == 20 and set.union(*parts) == set(range(20))
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    dm = SpectraDataModule(str(train_data["slag"]), targets=["Mn"], input_kind="image_2d",
                           split={"train": 0.5, "val": 0.25, "test": 0.25, "seed": 1}, shots=5)
    dm.prepare_data()
    dm.setup()
    groups = {part: set(dm.tensors(part).tensors[2].tolist()) for part in ("train", "val", "test")}
    assert groups["train"].isdisjoint(groups["val"]) and groups["train"].isdisjoint(groups["test"])
    assert groups["val"].isdisjoint(groups["test"])
    assert dm.features.shape[1:] == (2, 125, 131)  # 10 shots in groups of 5


def test_same_seed_same_metrics(train_data, mlflow_tmp):
    path = Path(EXPERIMENTS[0]).with_name("trcsl_1d_pretrain_slag.yaml")
    sets = [f"data.dataset={train_data['slag']}", "train.max_epochs=2", "data.shots=5",
            "tracking.log_model=false"]
    a = run_experiment(load_config(path, sets), progress=False)
    b = run_experiment(load_config(path, sets), progress=False)
    assert a.test == b.test and a.test_sample == b.test_sample


def test_transfer_freezes_features_and_trains_head(train_data, mlflow_tmp):
    exp = Path(EXPERIMENTS[0]).parent
    common = ["train.max_epochs=2", "data.shots=5", "tracking.log_model=false"]
    pre = run_experiment(load_config(exp / "trcsl_pretrain_slag.yaml",
                                     [f"data.dataset={train_data['slag']}", *common]), progress=False)
    fine = run_experiment(load_config(exp / "trcsl_finetune_carbon_steel.yaml",
                                      [f"data.dataset={train_data['carbon-steel']}",
                                       f"transfer.from={pre.checkpoint}", *common]), progress=False)
    before = torch.load(pre.checkpoint, weights_only=False)["state_dict"]
    after = torch.load(fine.checkpoint, weights_only=False)["state_dict"]
    features = [k for k in before if k.startswith("model.features.")]
    head = [k for k in before if k.startswith("model.head.") and before[k].dtype.is_floating_point]
    assert features and head
    for k in features:
        assert torch.equal(before[k], after[k]), f"frozen {k} changed"
    assert any(not torch.equal(before[k], after[k]) for k in head)


def test_run_is_tracked_and_pyfunc_predicts_raw_spectra(train_data, mlflow_tmp):
    path = Path(EXPERIMENTS[0]).with_name("trcsl_1d_pretrain_slag.yaml")
    result = run_experiment(load_config(path, [f"data.dataset={train_data['slag']}",
                                               "train.max_epochs=2", "data.shots=5"]), progress=False)
    runs = mlflow.search_runs(experiment_names=["trcsl_1d_pretrain_slag"])
    row = runs[runs.run_id == result.run_id].iloc[0]
    assert row["status"] == "FINISHED"
    assert np.isfinite(row["metrics.test_r2_Mn"]) and np.isfinite(row["metrics.test_sample_rmse_Cr"])
    assert row["params.cfg.model.name"] == "trcsl_1d" and row["tags.git_commit"]
    assert len(row["tags.dataset_manifest_sha256"]) == 64
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)}
    assert {"config.yaml", "pred_vs_true.png", "checkpoints"} <= artifacts  # the pyfunc is a LoggedModel (MLflow 3)
    from saca_lab.data.store import open_dataset

    ds = open_dataset(train_data["slag"])
    raw = np.asarray(ds.spectra[:3], dtype=np.float64).mean(axis=1)
    model = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model")
    out = model.predict(pd.DataFrame(raw, columns=[f"{w:.5f}" for w in ds.wavelengths]))
    assert list(out.columns) == ["C", "Cu", "Mn", "Cr"] and np.isfinite(out.to_numpy()).all()
    direct = Predictor(result.checkpoint).predict(ds.wavelengths, raw)
    np.testing.assert_allclose(out.to_numpy(), direct, rtol=1e-5, atol=1e-6)


def test_predict_cli_on_real_geostandards(geostandards, real_data, mlflow_tmp, capsys):
    exp = Path(EXPERIMENTS[0]).with_name("geostandards_sio2.yaml")
    assert main(["train", str(exp), "--quiet", "--set", f"data.dataset={geostandards}",
                 "--set", "train.max_epochs=3"]) == 0
    run_id = capsys.readouterr().out.split()[1]
    out = mlflow_tmp / "pred.csv"
    assert main(["predict", "--model", run_id, "--input",
                 str(real_data / "libs_geostandards_sio2.csv"), "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["sample_id", "SiO2"] and len(pred) == 103
    assert np.isfinite(pred.SiO2).all()


def test_bad_training_input(train_data, mlflow_tmp, tmp_path, capsys):
    exp = Path(EXPERIMENTS[0]).parent
    assert main(["train", str(exp / "trcsl_pretrain_slag.yaml"), "--set", "model.name=resnet99"]) == 2
    assert "resnet_dcnn" in capsys.readouterr().err  # lists the registered models
    assert main(["train", str(exp / "trcsl_pretrain_slag.yaml"), "--set", "trian.max_epochs=1"]) == 2
    assert "unknown field 'trian'" in capsys.readouterr().err
    pre = run_experiment(load_config(exp / "trcsl_1d_pretrain_slag.yaml", [
        f"data.dataset={train_data['slag']}", "train.fast_dev_run=true", "data.shots=5",
        "tracking.log_model=false"]),
        progress=False)
    with pytest.raises(InputError, match="trcsl_1d"):
        run_experiment(load_config(exp / "trcsl_finetune_carbon_steel.yaml", [
            f"data.dataset={train_data['carbon-steel']}", f"transfer.from={pre.checkpoint}",
            "train.fast_dev_run=true", "data.shots=5"]), progress=False)
    bad = tmp_path / "nan.csv"
    bad.write_text("wavelength,intensity\n" + "\n".join(f"{w},{'nan' if i == 3 else 1}"
                                                        for i, w in enumerate(range(300, 320))))
    assert main(["predict", "--model", pre.checkpoint, "--input", str(bad),
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert "nan.csv" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
    assert main(["predict", "--model", str(bad), "--input", str(bad), "--out", str(tmp_path / "p.csv")]) == 2


def test_later_unfreezing_trains_the_features(train_data, mlflow_tmp):
    exp = Path(EXPERIMENTS[0]).parent
    common = ["train.max_epochs=3", "data.shots=5", "tracking.log_model=false"]
    pre = run_experiment(load_config(exp / "trcsl_1d_pretrain_slag.yaml",
                                     [f"data.dataset={train_data['slag']}", *common]), progress=False)
    fine = run_experiment(load_config(exp / "trcsl_1d_finetune_carbon_steel.yaml", [
        f"data.dataset={train_data['carbon-steel']}", f"transfer.from={pre.checkpoint}",
        "transfer.unfreeze_at_epoch=1", "transfer.unfreeze_lr=0.001", *common]), progress=False)
    before = torch.load(pre.checkpoint, weights_only=False)["state_dict"]
    after = torch.load(fine.checkpoint, weights_only=False)["state_dict"]
    conv = [k for k in before if k.startswith("model.features.") and k.endswith("weight")]
    assert any(not torch.equal(before[k], after[k]) for k in conv)


def test_input_standardisation_is_stored_with_the_model(train_data, mlflow_tmp):
    path = Path(EXPERIMENTS[0]).with_name("trcsl_1d_pretrain_slag.yaml")
    base = [f"data.dataset={train_data['slag']}", "train.fast_dev_run=true", "data.shots=5",
            "tracking.log_model=false"]
    on = run_experiment(load_config(path, base), progress=False)
    off = run_experiment(load_config(path, [*base, "data.preprocessing.standardize=false"]), progress=False)
    state_on = torch.load(on.checkpoint, weights_only=False)["state_dict"]
    state_off = torch.load(off.checkpoint, weights_only=False)["state_dict"]
    # data.lines: nist -> 11 points per window, as many windows as the selection kept
    n_in = state_on["input_mean"].shape[0]
    assert n_in % 11 == 0 and n_in > 0 and torch.all(state_on["input_std"] > 0)
    assert state_off["input_mean"].numel() == 0
    assert Predictor(on.checkpoint).module.input_mean.shape == (n_in,)


def test_subset_split_draws_distinct_samples_within_the_dataset():
    from saca_lab.datasets.splits import make_split
    from saca_lab.errors import InputError

    a = make_split(50, {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 0, "subset": 10})
    b = make_split(50, {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 0, "subset": 10, "subset_seed": 1})
    for s in (a, b):
        parts = np.concatenate([s.train, s.val, s.test])
        assert len(parts) == len(set(parts.tolist())) == 10 and parts.max() < 50
        assert len(s.test) == 3
    assert set(np.concatenate([a.train, a.test]).tolist()) != set(np.concatenate([b.train, b.test]).tolist())
    with pytest.raises(InputError, match="larger than the dataset"):
        make_split(8, {"train": 0.7, "val": 0.0, "test": 0.3, "seed": 0, "subset": 10})


class _TrainSpy(Callback):
    """Sample indices of every training batch."""

    def __init__(self) -> None:
        self.train: set[int] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train |= set(batch[2].tolist())


def test_collected_predictions_and_calibration_scores_match_a_fresh_forward_pass(train_data, mlflow_tmp):
    from saca_lab.models import model_info
    from saca_lab.training.module import SpectraRegressor
    from saca_lab.training.reporting import sample_means
    from saca_lab.training.run import build_datamodule

    path = Path(EXPERIMENTS[0]).with_name("trcsl_1d_pretrain_slag.yaml")
    cfg = load_config(path, [f"data.dataset={train_data['slag']}", "train.max_epochs=2",
                             "data.shots=5", "tracking.log_model=false",
                             "data.split={train: 0.5, val: 0.2, test: 0.3, seed: 2, calibration: 0.5}"])
    spy = _TrainSpy()
    result = run_experiment(cfg, progress=False, callbacks=[spy])
    dm = build_datamodule(cfg, model_info(cfg["model"]["name"]).input_kind, result.feature_spec)
    dm.setup()
    calibration = set(dm.split.calibration.tolist())
    # no training batch holds a calibration sample (the scores need unseen samples)
    assert calibration and spy.train == set(dm.split.train.tolist())
    assert spy.train.isdisjoint(calibration)
    # the tested weights, read back from the checkpoint, through a plain forward pass
    module = SpectraRegressor.from_checkpoint(result.checkpoint).eval()

    def forward(indices):
        x, y, groups = dm._part(np.sort(indices))
        with torch.no_grad():
            return groups, y, module(torch.from_numpy(x)).numpy()

    groups, y, pred = forward(dm.split.test)
    got = result.predictions
    order = np.argsort(got.groups, kind="stable")
    np.testing.assert_array_equal(got.groups[order], groups)
    np.testing.assert_allclose(got.y_true[order], y)
    np.testing.assert_allclose(got.y_pred[order], pred, rtol=1e-5, atol=1e-5)
    # the calibration scores: the same weights on the calibration samples, shots averaged
    groups, y, pred = forward(dm.split.calibration)
    ids, y_true = sample_means(y, groups)
    _, y_pred = sample_means(pred, groups)
    record = result.calibration
    assert record["sample_ids"] == [dm.ds.sample_ids[int(i)] for i in ids]
    for j, t in enumerate(record["targets"]):
        np.testing.assert_allclose(record["y_pred"][t], y_pred[:, j], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(record["scores"][t], np.abs(y_true[:, j] - y_pred[:, j]),
                                   rtol=1e-5, atol=1e-5)
