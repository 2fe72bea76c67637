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

from saca_lab.baselines import list_baselines, make_baseline
from saca_lab.compare.features import LineSetting, split_key
from saca_lab.data.splits import Split, make_split
from saca_lab.data.store import Dataset, data_root, is_dataset, open_dataset
from saca_lab.errors import InputError

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
    data root, simulated on first use like :func:`saca_lab.data.datamodules.resolve_dataset`."""
    if isinstance(spec, Dataset):
        return spec
    from saca_lab.spectra.presets import PRESETS

    if is_dataset(spec):
        return open_dataset(spec)
    if str(spec) in PRESETS:
        from saca_lab.data.datamodules import resolve_dataset

        return resolve_dataset({"preset": str(spec)}, None if root is None else str(root))
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
    known = list(list_baselines()) + list(deep_names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"--models: unknown model(s) {unknown}; baselines: "
                         f"{', '.join(list_baselines())}; deep models: {', '.join(deep_names)}")
    return [n for n in names if n in list_baselines()], [n for n in names if n not in list_baselines()]


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


def split_overrides(overrides) -> tuple[dict[str, dict], list[str]]:
    """``--set`` items: ``plsr.max_components=8`` go to a baseline, the rest to deep configs
    (all of them, or one with ``MODEL.key=value``; see :func:`overrides_for`)."""
    from saca_lab.config import parse_value

    params: dict[str, dict] = {}
    deep = []
    for item in overrides or ():
        key, sep, raw = str(item).partition("=")
        head, dot, rest = key.strip().partition(".")
        if not sep:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        if head in list_baselines() and dot and rest:
            params.setdefault(head, {})[rest] = parse_value(raw)
        else:
            deep.append(str(item))
    for name, p in params.items():
        make_baseline(name, **p)  # unknown parameters fail here, before anything runs
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
    """The ``data.split`` of repeat ``repeat`` at ``size`` samples: a subset, then 70/30."""
    return {"train": 0.7, "val": 0.0, "test": 0.3, "seed": seed + repeat, "folds": None,
            "fold": None, "subset": int(size), "subset_seed": seed + repeat}


def fold_split_spec(cv: int, fold: int, seed: int) -> dict:
    return {"train": 0.7, "val": 0.0, "test": 0.3, "seed": seed, "folds": int(cv),
            "fold": int(fold), "subset": None, "subset_seed": None}


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

