"""Deep models in a comparison study: one Lightning run per split, nested in MLflow.

Which experiment file a deep model starts from:

1. ``experiments/compare_<model>.yaml`` when it exists (``compare_gll.yaml``);
2. else ``experiments/<model>_finetune_carbon_steel.yaml``: a transfer model (``trcsl`` and its
   ablations, TrCSL Sec. 2.4), fine-tuned from the newest finished run of its pre-training
   experiment on the study's transfer dataset;
3. else ``experiments/compare_cnn1d.yaml`` with the model name replaced (a 1D CNN on the
   full spectrum; its ``model.overrides`` only apply to the model it names).

The study then sets the dataset, the target (the compared element alone: a transfer model's
pre-trained head is re-fitted to it, as the baselines fit it alone), the split (the same
samples as the baselines), with ``--features lines`` the line windows (the same as the
baselines'), the seed and the MLflow experiment; ``--set`` overrides reach every deep config.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saca_lab.errors import InputError

GENERIC_BASE = "compare_cnn1d.yaml"


def experiments_dir() -> Path:
    from saca_lab.config import project_dir

    return project_dir("experiments")


@dataclass(frozen=True)
class DeepModel:
    """A deep model of the study and the experiment file it starts from."""

    name: str
    base: Path
    transfer_from: str | None = None   # resolved MLflow run id of the pre-training

    @property
    def is_transfer(self) -> bool:
        return self.transfer_from is not None


def deep_model_names() -> list[str]:
    from saca_lab.models import list_models

    return list(list_models())


def _base_file(name: str) -> Path:
    exp = experiments_dir()
    for candidate in (exp / f"compare_{name}.yaml", exp / f"{name}_finetune_carbon_steel.yaml",
                      exp / GENERIC_BASE):
        if candidate.is_file():
            return candidate
    raise InputError(f"--models {name}: no experiment file for it in {exp} "
                     f"(compare_{name}.yaml or {GENERIC_BASE})")


def resolve_deep_model(name: str, overrides: list[str]) -> DeepModel:
    """Find the base config; for transfer, the pre-training run (InputError if none)."""
    from saca_lab.config import load_config

    base = _base_file(name)
    cfg = load_config(base, overrides)
    source = (cfg.get("transfer") or {}).get("from")
    if not source:
        return DeepModel(name, base)
    source = str(source)
    if source.startswith("experiment:"):
        from saca_lab import tracking

        experiment = source[len("experiment:"):]
        try:
            source = tracking.latest_run(experiment)
        except InputError:
            pretrain = experiments_dir() / f"{experiment}.yaml"
            raise InputError(
                f"--models {name}: transfer needs a finished pre-training run in MLflow experiment "
                f"{experiment!r} ({tracking.tracking_uri()}), and there is none; train it first: "
                f"saca-lab train {_display(pretrain)}") from None
    return DeepModel(name, base, transfer_from=source)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build_config(model: DeepModel, *, dataset_path: str, element: str, split_spec: dict,
                 seed: int, run_name: str, experiment: str, overrides: list[str],
                 epochs: int | None = None, airpls: bool = True, minmax: bool = True,
                 windows: tuple | None = None, calibration: float | dict | None = None) -> dict:
    """The resolved experiment config of one deep fit of the study.

    ``windows`` is ``(wavelengths, half_width)``: the line windows of the draw, written into a
    non-transfer model's ``data.lines`` (a transfer model reads its pre-training's windows,
    which the study made the draw's windows). ``calibration`` is the ``data.split.calibration``
    of the fit: the share of the training samples kept aside for split-conformal scores, or
    ``{folds: K, fold: k}`` for a CV+ fold run; None for none.
    """
    from saca_lab.compare.features import airpls_setting
    from saca_lab.config import apply_overrides, load_config, read_experiment

    # log_model first so a user's --set tracking.log_model=true still wins: a pyfunc model per
    # fit costs seconds and disk, and a study only needs the metrics
    items: list = ["tracking.log_model=false", *overrides]
    if (apply_overrides(read_experiment(model.base), items).get("model") or {}).get("name") != model.name:
        items.append(("model", {"name": model.name, "overrides": {}}))
    # the element alone, for transfer too (the paper fine-tunes all four elements at once): a
    # head fitted to four targets against baselines fitted to one would compare two tasks
    items += [("data.dataset", str(dataset_path)), ("data.targets", [element]),
              ("data.split", dict(split_spec))]
    if calibration is not None:  # after the split: the study's split replaces the config's
        items.append(("data.split.calibration", calibration))
    if model.is_transfer:
        items.append(("transfer.from", model.transfer_from))
    else:
        items += [("data.preprocessing.airpls", airpls_setting(airpls)),
                  ("data.preprocessing.minmax", bool(minmax))]
        if windows is not None:
            lines, half_width = windows
            items += [("data.lines", None if lines is None else [float(v) for v in lines]),
                      ("data.half_width", int(half_width))]
    if epochs is not None:
        items.append(("train.max_epochs", int(epochs)))
    items += [("seed", int(seed)), ("name", f"compare-{model.name}"),
              ("tracking.experiment", experiment), ("tracking.run_name", run_name)]
    try:
        return load_config(model.base, items)
    except InputError as e:
        raise InputError(f"{e} (study config of {model.name})") from None


@contextmanager
def _quiet_lightning():
    """Silence Lightning's per-run banners (accelerator, tips) between the study's progress lines."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@dataclass
class DeepOutcome:
    sample_index: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    seconds: float
    run_id: str
    targets: list[str]
    feature_spec: dict
    #: per test sample, ``sqrt(mean sigma^2)`` of its items (a model that predicts sigma)
    sigma: np.ndarray | None = None
    #: the run's calibration scores of ``element`` (``data.split.calibration`` > 0)
    scores: np.ndarray | None = None
    #: the sample id of each score, in the same order
    calibration_ids: list[str] | None = None


def run_deep_fit(cfg: dict, element: str, parent_run_id: str, tags: dict) -> DeepOutcome:
    """Train and test one config; per-sample predictions of ``element`` on the test samples."""
    from saca_lab.training.run import run_experiment

    start = time.perf_counter()
    with _quiet_lightning():
        result = run_experiment(cfg, progress=False, parent_run_id=parent_run_id, tags=tags)
    seconds = time.perf_counter() - start
    ckpt_dir = Path(result.checkpoint).parent
    if ckpt_dir.name.startswith("saca-run-"):  # logged to MLflow already; a study makes many
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    pred = result.predictions  # the run's one test pass (saca_lab/training/evaluate.py)
    j = list(result.targets).index(element)
    ids, yt, yp = pred.sample_means()
    sigma = pred.sample_sigma()  # the rule of the calibration scores' sigma
    if sigma is not None:
        sigma = sigma[:, j]
    calibration = result.calibration
    scores = None if calibration is None else np.asarray(calibration["scores"][element], float)
    cal_ids = None if calibration is None else [str(i) for i in calibration["sample_ids"]]
    return DeepOutcome(ids.astype(int), yt[:, j], yp[:, j], seconds, result.run_id,
                       list(result.targets), dict(result.feature_spec), sigma, scores, cal_ids)


def base_summary(model: DeepModel) -> str:
    """One line for logs: the experiment file and, for transfer, the source run."""
    text = f"{model.name}: {_display(model.base)}"
    return text + (f", transfer from run {model.transfer_from}" if model.is_transfer else "")

