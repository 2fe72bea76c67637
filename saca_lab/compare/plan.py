"""What a comparison study will do, checked before anything runs or is written.

A :class:`StudyPlan` holds the resolved datasets, models, sizes or folds, and every split by
sample. Building it validates all user input, so a bad argument fails with
:class:`~saca_lab.errors.InputError` before a model is fitted, a file written or an MLflow run
started.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from saca_lab.baselines import (
    SOURCE_BASELINES,
    list_baselines,
    list_transfer_baselines,
    make_baseline,
)
from saca_lab.baselines.intervals import DEFAULT_FOLDS
from saca_lab.compare.features import LineSetting, split_key
from saca_lab.config import DEFAULTS
from saca_lab.data.store import Dataset, data_root, is_dataset, open_dataset
from saca_lab.datasets.splits import Split, make_split
from saca_lab.errors import InputError
from saca_lab.training.conformal import DEEP_METHODS

#: Fewest samples a 70/30 split can score: 3 to train on, 2 to compute an R2 over.
MIN_SIZE = 5
NORMALIZATIONS = ("minmax", "sum", "none")


def parse_sizes(text: str | list | tuple) -> list[int]:
    """``"10:100:10"`` (start:stop:step, stop included) or ``"10,20"`` -> sorted unique sizes."""
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        text = str(text).strip()
        try:
            if ":" in text:
                parts = [int(p) for p in text.split(":")]
                if len(parts) != 3 or parts[2] < 1 or parts[0] > parts[1]:
                    raise ValueError
                items = list(range(parts[0], parts[1] + 1, parts[2]))
            else:
                items = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise InputError(f"--sizes {text!r}: expected START:STOP:STEP (e.g. 10:100:10) "
                             "or a comma-separated list (e.g. 10,20)") from None
    if not items or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) for s in items):
        raise InputError(f"--sizes {text!r}: expected positive integers")
    return sorted({int(s) for s in items})


def resolve_study_dataset(spec, root: str | os.PathLike | None = None) -> Dataset:
    """A dataset directory, or a preset name (``slag``, ``carbon-steel``, ``stainless``) under the
    data root, simulated on first use (:func:`saca_lab.datasets.resolve.resolve_dataset`)."""
    if isinstance(spec, Dataset):
        return spec
    from saca_lab.spectra.presets import PRESETS

    if is_dataset(spec):
        return open_dataset(spec)
    if str(spec) in PRESETS:
        from saca_lab.datasets.resolve import resolve_dataset

        return resolve_dataset({"preset": str(spec)}, root)
    raise InputError(f"--dataset {spec}: neither a dataset directory nor a preset "
                     f"({', '.join(PRESETS)}); data root {data_root(root)}")


def dataset_label(ds: Dataset) -> str:
    return ds.path.name


@dataclass(frozen=True)
class Fit:
    """One model fitted on one split: a (size, repeat) draw or a CV fold."""

    model: str
    dataset: str          # label of the dataset the split indexes
    size: int             # samples drawn (the dataset's sample count in CV mode)
    repeat: int           # repeat index, or fold index in CV mode
    split: Split
    split_spec: dict      # the ``data.split`` mapping that reproduces it (deep configs)


@dataclass
class StudyPlan:
    """Everything a study needs, validated."""

    dataset: Dataset
    element: str
    baselines: list[str]
    deep: list[str]
    sizes: list[int] | None
    cv: int | None
    repeats: int
    seed: int
    features: str
    airpls: bool
    normalize: str
    baseline_params: dict[str, dict] = field(default_factory=dict)
    deep_overrides: list[str] = field(default_factory=list)
    transfer_dataset: Dataset | None = None
    #: what the calibration-transfer baselines (plsr_pds ...) read besides the study's samples,
    #: and the row of each study sample in it (-1: not measured there; see :func:`pair_samples`)
    source_dataset: Dataset | None = None
    source_pairs: np.ndarray | None = None
    #: nominal level of the CV+ prediction intervals of the baselines (``--interval``), or None
    interval: float | None = None
    #: how deep models get theirs (``--conformal``: ``split`` or ``cv+``), and K of every CV+
    #: interval of the study (``--cv-folds``)
    conformal: str = DEEP_METHODS[0]
    cv_folds: int = DEFAULT_FOLDS
    fits: list[Fit] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: ``features == "lines"``: the study's line setting, and the windows of each draw
    #: (dataset label, split) -> wavelengths, the same for every model of that draw
    lines: LineSetting | None = None
    fit_lines: dict[tuple[str, str], tuple[float, ...] | None] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "cv" if self.cv else "sizes"

    @property
    def models(self) -> list[str]:
        return self.baselines + self.deep

    def deep_overrides_for(self, name: str) -> list[str]:
        return overrides_for(self.deep_overrides, name, self.deep)

    def lines_of(self, fit: Fit) -> tuple[float, ...] | None:
        """The line windows every model reads on this fit's draw (``features == "lines"``)."""
        return self.fit_lines[(fit.dataset, split_key(fit.split_spec))]

    @property
    def half_width(self) -> int:
        return self.lines.half_width


def split_models(models, deep_names) -> tuple[list[str], list[str]]:
    """Baseline and deep model names from ``"plsr,pso_svr"`` or a list; unknown -> InputError."""
    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models)]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise InputError("--models: no model given")
    baselines = list(list_baselines()) + list(list_transfer_baselines())
    known = baselines + list(deep_names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"--models: unknown model(s) {unknown}; baselines: "
                         f"{', '.join(list_baselines())}; calibration transfer (with "
                         f"--source-dataset): {', '.join(list_transfer_baselines())}; "
                         f"deep models: {', '.join(deep_names)}")
    return [n for n in names if n in baselines], [n for n in names if n not in baselines]


def overrides_for(deep_overrides, name: str, deep_names) -> list[str]:
    """The deep-config overrides of one model: unscoped items, and ``NAME.key=value`` items
    scoped to it (``trcsl.transfer.from=RUN_ID`` reaches ``trcsl`` only)."""
    out = []
    for item in deep_overrides:
        head, _, rest = item.partition(".")
        if head not in deep_names:
            out.append(item)
        elif head == name:
            out.append(rest)
    return out


def check_scoped_overrides(deep_overrides, deep_names) -> None:
    """A ``MODEL.key=value`` item must name a deep model of the study: scoped to another
    registered model it would otherwise reach every model unscoped and fail as an unknown
    field ``MODEL``."""
    from saca_lab.models import list_models

    for item in deep_overrides:
        head = item.partition(".")[0].strip()
        if head in list_models() and head not in deep_names:
            raise InputError(f"--set {item}: {head} is not a deep model of this study (--models "
                             f"deep models: {', '.join(deep_names) or 'none'})")


def split_overrides(overrides) -> tuple[dict[str, dict], list[str]]:
    """``--set`` items: ``plsr.max_components=8`` go to a baseline, the rest to deep configs
    (all of them, or one with ``MODEL.key=value``; see :func:`overrides_for`)."""
    from saca_lab.config import parse_override

    params: dict[str, dict] = {}
    deep = []
    for item in overrides or ():
        key, value = parse_override(item)
        head, dot, rest = key.partition(".")
        if head in (*list_baselines(), *list_transfer_baselines()) and dot and rest:
            params.setdefault(head, {})[rest] = value
        else:
            deep.append(str(item))
    for name, p in params.items():
        make_baseline(name, **p)  # unknown parameters fail here, before anything runs
    from saca_lab.config import check_overrides
    from saca_lab.models import list_models

    # typed against the config schema before a dataset is resolved; a MODEL.key item without
    # its model scope
    scoped = set(list_models())
    check_overrides([i.partition(".")[2] if i.partition(".")[0].strip() in scoped else i
                     for i in deep])
    return params, deep


def check_element(ds: Dataset, element: str, what: str = "--dataset") -> None:
    if element not in ds.targets:
        raise InputError(f"--element {element!r} is not a target of {what} {ds.path} "
                         f"(targets: {', '.join(ds.targets) or 'none'})")


def check_sizes(sizes: list[int], ds: Dataset) -> None:
    n = ds.shape[0]
    for s in sizes:
        if s < MIN_SIZE:
            raise InputError(f"--sizes: size {s} is too small for a 70/30 split by sample "
                             f"(need at least {MIN_SIZE}: 3 to train, 2 to test)")
        if s > n:
            raise InputError(f"--sizes: size {s} is larger than the dataset {ds.path} "
                             f"({n} samples)")


def check_cv(cv, ds: Dataset) -> int:
    n = ds.shape[0]
    if not isinstance(cv, (int, np.integer)) or isinstance(cv, bool) or cv < 2:
        raise InputError(f"--cv must be an integer >= 2, got {cv!r}")
    if 2 * cv > n:
        raise InputError(f"--cv {cv}: the dataset {ds.path} has {n} samples; every fold needs "
                         f"at least 2 test samples (at most {n // 2} folds)")
    return int(cv)


def size_split_spec(size: int, repeat: int, seed: int) -> dict:
    """The ``data.split`` of repeat ``repeat`` at ``size`` samples: a subset, then the config's
    default fractions (70/30)."""
    return {**DEFAULTS["data"]["split"], "seed": seed + repeat, "subset": int(size),
            "subset_seed": seed + repeat}


def fold_split_spec(cv: int, fold: int, seed: int) -> dict:
    return {**DEFAULTS["data"]["split"], "seed": seed, "folds": int(cv), "fold": int(fold)}


def plan_fits(model: str, ds: Dataset, sizes, cv, repeats: int, seed: int) -> list[Fit]:
    """Every fit of one model on one dataset; the same draws for every model of a study."""
    label, n = dataset_label(ds), ds.shape[0]
    fits = []
    if cv:
        for fold in range(cv):
            spec = fold_split_spec(cv, fold, seed)
            fits.append(Fit(model, label, n, fold, make_split(n, spec), spec))
        return fits
    for size in sizes:
        for r in range(repeats):
            spec = size_split_spec(size, r, seed)
            fits.append(Fit(model, label, size, r, make_split(n, spec), spec))
    return fits


def pair_samples(ds: Dataset, source: Dataset) -> np.ndarray:
    """The row of each study sample in the source dataset, or -1.

    A sample is paired when the source holds the same sample id with the same reference values
    of every target both datasets have: the same standard measured on the source instrument
    (``saca-lab simulate`` with the same preset, size and seed on another ``--instrument``).
    """
    common = [t for t in ds.targets if t in source.targets]
    where = {sid: j for j, sid in enumerate(source.sample_ids)}
    pairs = np.full(len(ds.sample_ids), -1, dtype=np.int64)
    if not common:
        return pairs
    y, ys = ds.target_matrix(common), source.target_matrix(common)
    for i, sid in enumerate(ds.sample_ids):
        j = where.get(sid)
        if j is not None and np.allclose(y[i], ys[j], rtol=1e-9, atol=1e-12):
            pairs[i] = j
    return pairs


def check_source(plan: StudyPlan, source: Dataset) -> None:
    """Attach ``--source-dataset`` to a plan whose transfer baselines need it.

    Raises
    ------
    InputError
        The element is not a target of the source, the two datasets have different channels
        (``--features spectrum``), ``plsr_pds`` / ``plsr_ds`` find a study sample the source did
        not measure, or a draw would leave fewer than two source samples.
    """
    check_element(source, plan.element, "--source-dataset")
    if plan.features == "spectrum" and source.shape[2] != plan.dataset.shape[2]:
        raise InputError(f"--source-dataset {source.path} has {source.shape[2]} channels, --dataset "
                         f"{plan.dataset.path} {plan.dataset.shape[2]}: the transfer models read "
                         "both on one channel axis (resample one onto the other's grid with "
                         "saca-lab import --grid, or use --features lines)")
    pairs = pair_samples(plan.dataset, source)
    paired = [m for m in plan.baselines if SOURCE_BASELINES.get(m) == "paired"]
    missing = int((pairs < 0).sum())
    if paired and missing:
        raise InputError(f"--models {','.join(paired)}: standardisation needs every study sample "
                         f"measured on the source instrument too (same sample id and "
                         f"composition), but {missing} of {len(pairs)} samples of "
                         f"{plan.dataset.path} are not in --source-dataset {source.path}; simulate "
                         "the same preset, --samples and --seed with another --instrument")
    fewest = min((len(source_rows(pairs, f.split.test, source.shape[0])) for f in plan.fits),
                 default=source.shape[0])
    if fewest < 2:
        raise InputError(f"--source-dataset {source.path}: {source.shape[0]} samples; without a "
                         f"draw's test samples fewer than 2 remain to calibrate on")
    plan.source_dataset, plan.source_pairs = source, pairs


def source_rows(pairs: np.ndarray, test: np.ndarray, n_source: int) -> np.ndarray:
    """Source rows a fit may calibrate on: all but the source measurements of its test samples
    (a test sample's composition must reach no model, on whichever instrument it was measured)."""
    held_out = pairs[np.asarray(test, dtype=np.int64)]
    return np.setdiff1d(np.arange(n_source), held_out[held_out >= 0])
