"""Typed schema of an experiment configuration: every field's type, range and default.

One stdlib :mod:`dataclasses` dataclass per config section (no pydantic dependency; the checks
are :mod:`saca_lab.typecheck`). The dataclasses own the defaults: :data:`saca_lab.config.DEFAULTS`
is generated from them by :func:`defaults`. :func:`check` walks a resolved config (a nested
dict, as read from YAML with ``--set`` overrides) and raises
:class:`~saca_lab.errors.InputError` naming the file, the dotted field, the bad value and what
is expected::

    experiments/x.yaml: train.lr must be a number > 0, got 'abc'

Every verb that takes ``--set`` (train, sweep, compare, reproduce) checks through here before
a dataset is resolved or a run starts. Open sections are checked where their keys are known:
``data.dataset`` (a preset spec), ``data.preprocessing``, ``data.augment``,
``train.early_stopping`` and ``transfer`` refuse unknown keys; ``model.overrides`` are checked
against the model's constructor by :func:`saca_lab.models.registry.check_arguments`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from saca_lab.errors import InputError
from saca_lab.typecheck import defaults as _defaults
from saca_lab.typecheck import spec, walk

LrSchedule = Literal["step", "cosine", "constant"]
#: Learning-rate schedules of ``train.lr_schedule`` (see saca_lab/training/module.py).
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
#: Largest seed NumPy and Lightning accept.
MAX_SEED = 2**32 - 1

_DEVICES = re.compile(r"-1|\d+|\d+(,\d+)+,?")


def _devices_ok(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v == -1 or v >= 1
    if isinstance(v, str):
        return v.strip() == "auto" or bool(_DEVICES.fullmatch(v.strip()))
    return bool(v) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)


def _limit_ok(v: Any) -> bool:
    return v is None or (isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v <= 1)


def _prefixed(path: str, exc: InputError) -> InputError:
    return InputError(f"{path}: {exc}")


@dataclasses.dataclass
class ModelSection:
    """``model``: a registered model and its constructor overrides."""

    name: str | None = spec(None, required=True, hint="a registered model, see saca-lab models")
    overrides: dict | None = spec(factory=dict)

    @staticmethod
    def extra_check(value: Mapping, path: str, partial: bool) -> None:
        name = value.get("name")
        if not isinstance(name, str):
            return
        import saca_lab.models  # noqa: F401  (registers the models)
        from saca_lab.models import registry

        try:
            registry.accepted_arguments(name)
        except InputError as e:
            raise _prefixed(f"{path}.name", e) from None
        registry.check_arguments(name, value.get("overrides") or {}, where=f"{path}.overrides")


@dataclasses.dataclass
class DatasetPreset:
    """``data.dataset`` as a mapping: a simulated preset (generated on first use)."""

    preset: str = spec(required=True, hint="slag, carbon-steel or stainless")
    samples: int | None = spec(None, ge=1)
    shots: int | None = spec(None, ge=1)
    seed: int = spec(0, ge=0, le=MAX_SEED)
    path: str | None = spec(None, hint="folder name under the data root")
    nuisance: str | dict | None = spec(None, hint="none, calibrated or a mapping of levels")

    @staticmethod
    def extra_check(value: Mapping, path: str, partial: bool) -> None:
        if not isinstance(value.get("preset"), str):
            return
        from saca_lab.spectra.nuisance import resolve_nuisance
        from saca_lab.spectra.presets import get_preset

        try:
            preset = get_preset(value["preset"])
        except InputError as e:
            raise _prefixed(f"{path}.preset", e) from None
        try:
            resolve_nuisance(value.get("nuisance", preset.nuisance), value["preset"])
        except InputError as e:  # its messages start with "nuisance"
            raise InputError(f"{path}.{e}") from None


@dataclasses.dataclass
class CalibrationFolds:
    """``data.split.calibration: {folds: K, fold: k}``: fold ``k`` of a shuffled K-fold over the
    training samples is the calibration part (the CV+ fold runs of ``compare --conformal cv+``)."""

    folds: int = spec(None, required=True, ge=2, hint="K of the K-fold over training samples")
    fold: int = spec(None, required=True, ge=0, hint="which fold calibrates, 0 <= fold < folds")

    @staticmethod
    def extra_check(value: Mapping, path: str, partial: bool) -> None:
        if not partial and not value.get("fold", 0) < value.get("folds", 2):
            raise InputError(f"{path}.fold must be < {path}.folds, got fold {value['fold']} "
                             f"of {value['folds']} folds")


@dataclasses.dataclass
class SplitSection:
    """``data.split``: fractions by sample, or fold ``fold`` of a ``folds``-fold split."""

    train: float = spec(0.7, ge=0, le=1)
    val: float = spec(0.0, ge=0, le=1)
    test: float = spec(0.3, ge=0, le=1)
    seed: int = spec(0, ge=0, le=MAX_SEED)
    folds: int | None = spec(None, ge=2)
    fold: int | None = spec(None, ge=0)
    subset: int | None = spec(None, ge=2, hint="draw N samples, split those")
    subset_seed: int | None = spec(None, ge=0, le=MAX_SEED)
    # training samples kept aside for conformal scores (training/conformal.py): a share, or one
    # fold of a K-fold over them (datasets/splits.py, carve_calibration)
    calibration: float | CalibrationFolds = spec(
        0.0, ge=0, le=0.9, expect="a share in [0, 0.9] or {folds: K, fold: k} (K >= 2, "
        "0 <= k < K)", hint="training samples kept for prediction-interval scores")

    @staticmethod
    def extra_check(split: Mapping, path: str, partial: bool) -> None:
        if partial:
            return
        if split.get("folds") is None:
            if split.get("fold") is not None:
                raise InputError(f"{path}.fold needs {path}.folds (a k-fold split)")
            fractions = [split.get(k, 0) for k in ("train", "val", "test")]
            if fractions[0] <= 0:
                raise InputError(f"{path} fractions must be >= 0 with train > 0")
            if abs(sum(fractions) - 1.0) > 1e-6:
                raise InputError(f"{path} train+val+test = {sum(fractions)}, must be 1")
        else:
            k, fold = split["folds"], split.get("fold")
            if fold is None or not 0 <= fold < k:
                raise InputError(f"{path} needs folds >= 2 and 0 <= fold < folds")


@dataclasses.dataclass
class AirPLS:
    """``data.preprocessing.airpls``: baseline correction (preprocessing/baseline.py)."""

    lam: float = spec(1e4, gt=0)
    max_iter: int = spec(50, ge=1)


@dataclasses.dataclass
class Preprocessing:
    """``data.preprocessing``: airPLS, per-spectrum min-max; per-feature standardisation fitted
    on the training split."""

    airpls: AirPLS | Literal[False] | None = spec(factory=AirPLS, hint="null: no baseline correction")
    minmax: bool = spec(True)
    standardize: bool = spec(True)


@dataclasses.dataclass
class Augment:
    """``data.augment``: SACA's training-time augmentation (datasets/augment.py)."""

    shift_nm: float = spec(0.0, ge=0)
    jitter: float = spec(0.0, ge=0)


@dataclasses.dataclass
class DataSection:
    """``data``: dataset, targets, split, shot grouping, preprocessing, line windows, loaders."""

    dataset: str | DatasetPreset | None = spec(None, required=True,
                                               hint="a directory or {preset: NAME}")
    targets: list[str] | None = spec(None, nonempty=True, hint="null: all of the dataset's targets")
    split: SplitSection = spec(factory=SplitSection)
    shots: Literal["average", "each"] | int = spec("average", ge=1,
                                                   hint="an int k: mean of each k consecutive shots")
    preprocessing: Preprocessing = spec(factory=Preprocessing)
    # lines_1d models: nist | paper | air wavelengths (nm), see preprocessing/line_selection.py
    lines: Literal["nist", "paper"] | list[float] | None = spec("nist", gt=0, nonempty=True)
    lines_per_element: int = spec(3, ge=1, hint="lines: nist")
    half_width: int = spec(5, ge=0, hint="points each side of a line")
    augment: Augment | None = spec(None, hint="training data only")
    batch_size: int = spec(32, ge=1)
    num_workers: int = spec(0, ge=0)


@dataclasses.dataclass
class EarlyStopping:
    """``train.early_stopping``: Lightning's EarlyStopping on val_loss (needs data.split.val)."""

    patience: int = spec(3, ge=1)
    min_delta: float = spec(0.0, ge=0)


@dataclasses.dataclass
class TrainSection:
    """``train``: optimiser, schedule, precision and Lightning Trainer settings."""

    max_epochs: int = spec(100, ge=1)
    lr: float = spec(0.01, gt=0)
    lr_schedule: LrSchedule = spec("step", hint="training/module.py")
    lr_step: float = spec(100, gt=0, hint="epochs, or a fraction of max_epochs when < 1")
    lr_gamma: float = spec(0.1, gt=0)
    weight_decay: float = spec(0.0, ge=0)
    # adam: L2 added to the gradient (coupled, as Adam's weight_decay); adamw: decoupled decay
    # (Loshchilov & Hutter), the shrinkage weight_decay * lr per step whatever the gradient scale
    optimizer: Literal["adam", "adamw"] = spec("adam", hint="training/module.py")
    early_stopping: EarlyStopping | None = spec(None, hint="monitors val_loss")
    # auto: bf16-mixed where the device runs bf16 natively, else 32-true (saca_lab/runtime.py)
    precision: Literal["auto", "32-true", "32", "bf16-mixed", "16-mixed"] = spec("auto")
    # auto: true only for 2D inputs in bf16 on a CPU (saca_lab/runtime.py)
    channels_last: Literal["auto"] | bool = spec("auto")
    standardize_targets: bool = spec(True)
    fast_dev_run: bool | int = spec(False, ge=0)
    limit_train_batches: int | float | None = spec(
        None, ok=_limit_ok, expect="null, an integer >= 1 (batches) or a fraction in (0, 1]")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"] = spec("auto")
    devices: int | str | list[int] = spec(
        1, ok=_devices_ok, expect="'auto', -1, an integer >= 1, a list of device indices or "
                                  "a string like '0,1'")
    # Lightning strategy: auto | ddp | ddp_spawn | ...; auto is ddp_spawn when train.devices > 1
    # (saca_lab/runtime.py, resolve_strategy: ddp re-runs the launching command per rank)
    strategy: str = spec("auto")
    checkpoint_every: int = spec(10, ge=0, hint="epochs between resumable last-epoch "
                                                "checkpoints; 0: never")


@dataclasses.dataclass
class TransferSection:
    """``transfer``: fine-tune a pre-trained model (TrCSL, Sec. 2.4)."""

    from_: str = spec(required=True, key="from",
                      hint="an MLflow run id, runs:/RUN_ID, experiment:NAME or a checkpoint "
                           "path; quote a run id that YAML would read as a number")
    unfreeze_at_epoch: int | None = spec(None, ge=0)
    unfreeze_lr: float | None = spec(None, gt=0)


@dataclasses.dataclass
class TrackingSection:
    """``tracking``: MLflow experiment and run names."""

    experiment: str | None = spec(None, hint="default: the config's name")
    run_name: str | None = spec(None)
    log_model: bool = spec(True)


@dataclasses.dataclass
class Config:
    """A whole experiment configuration (an ``experiments/*.yaml`` with defaults filled)."""

    name: str | None = spec(None, hint="default: the experiment file's stem")
    seed: int = spec(0, ge=0, le=MAX_SEED)
    model: ModelSection = spec(factory=ModelSection)
    data: DataSection = spec(factory=DataSection)
    train: TrainSection = spec(factory=TrainSection)
    transfer: TransferSection | None = spec(None)
    tracking: TrackingSection = spec(factory=TrackingSection)


def defaults() -> dict[str, Any]:
    """The default configuration as a nested dict (fresh on each call)."""
    return _defaults(Config)


def check(cfg: Mapping, source: str = "config", *, partial: bool = False) -> None:
    """Check a resolved config (``partial``: only the fields a set of overrides holds).

    Raises
    ------
    InputError
        ``SOURCE: FIELD must be EXPECTED, got VALUE``, or an unknown or missing field, or a
        model override the model's constructor does not take.
    """
    try:
        walk(cfg, Config, "", partial)
    except InputError as e:
        raise InputError(f"{source}: {e}") from None
