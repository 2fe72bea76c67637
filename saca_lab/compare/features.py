"""What every model of a study sees: the full spectrum, or the same line windows.

``--features spectrum`` pairs with the deep models that read a spectrum (``spectrum_1d``: the
ResNet-DCNN, ``gll_spectrum``) or the spectrum folded into an image (``image_2d``: ``trcsl``
and its 2D ablations); ``--features lines`` pairs with the line-window models (``lines_1d``:
``gll``, ``trcsl_1d`` and its 1D ablations). A study with another pair is refused: a baseline
on 16,375 pixels against a network on 143 window pixels compares inputs, not models.

With ``lines``, every model of a draw reads the same windows:

* a transfer model's windows are those of its pre-training (stored in the checkpoint; a frozen
  feature extractor cannot read others), so they are the study's windows;
* otherwise the deep models' ``data.lines`` setting (``nist``, ``paper`` or wavelengths, the
  same for all of them) is resolved on each draw's training samples, as a training run does,
  and the resolved wavelengths are handed to the baselines and written into each deep config.

The baselines' inputs are the deep models' preprocessing (airPLS, min-max) of the shot-averaged
spectra; a transfer model pre-trained with another preprocessing than the study's is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from saca_lab.config import DEFAULTS
from saca_lab.errors import InputError
from saca_lab.preprocessing.line_selection import TRCSL_LINES

#: The paper's windows as wavelengths (what None meant in an older checkpoint's feature spec).
PAPER_WAVELENGTHS: tuple[float, ...] = tuple(line.wavelength_nm for line in TRCSL_LINES)

#: Which deep-model input kinds each ``--features`` choice pairs with.
FEATURE_INPUTS = {"spectrum": ("spectrum_1d", "image_2d"), "lines": ("lines_1d",)}
FEATURE_KINDS = tuple(FEATURE_INPUTS)


def airpls_setting(on: bool) -> dict | None:
    """The study's ``data.preprocessing.airpls``: the config's default (TrCSL's settings), or
    None for ``--no-airpls``."""
    return dict(DEFAULTS["data"]["preprocessing"]["airpls"]) if on else None


def feature_kind(input_kind: str) -> str:
    """``lines`` or ``spectrum``: what a model of this input kind reads."""
    return next(k for k, kinds in FEATURE_INPUTS.items() if input_kind in kinds)


def _models_reading(features: str) -> str:
    from saca_lab.models import list_models, model_info

    return ", ".join(m for m in list_models() if model_info(m).input_kind in FEATURE_INPUTS[features])


def choose_features(features: str | None, deep_kinds: dict[str, str]) -> str:
    """The study's features: ``features``, or (None) the kind every deep model reads.

    Parameters
    ----------
    features : {"spectrum", "lines"} or None
        ``--features``; None infers it from the deep models (``spectrum`` without any).
    deep_kinds : dict
        Deep model name -> its registry ``input_kind``.

    Raises
    ------
    InputError
        Unknown features, deep models that read different kinds, or a model that does not read
        the requested kind.
    """
    if features is not None and features not in FEATURE_KINDS:
        raise InputError(f"--features {features!r}: expected one of {FEATURE_KINDS}")
    kinds = {name: feature_kind(kind) for name, kind in deep_kinds.items()}
    if features is None:
        found = set(kinds.values())
        if len(found) > 1:
            by = {k: [n for n, v in kinds.items() if v == k] for k in sorted(found)}
            raise InputError(
                "--models: the deep models read different inputs ("
                + "; ".join(f"{', '.join(v)}: {k}" for k, v in by.items())
                + "), so the baselines cannot see the same features as all of them; compare "
                  f"line-window models ({_models_reading('lines')}) or spectrum models "
                  f"({_models_reading('spectrum')}) in one study")
        features = found.pop() if found else "spectrum"
    wrong = [n for n, k in kinds.items() if k != features]
    if wrong:
        raise InputError(
            f"--features {features}: {', '.join(wrong)} read{'s' if len(wrong) == 1 else ''} "
            f"{'line windows' if features == 'spectrum' else 'the full spectrum'}; --features "
            f"{features} pairs with {_models_reading(features)}. Use --features "
            f"{'lines' if features == 'spectrum' else 'spectrum'} or other models, so every "
            f"model of the study sees the same features")
    return features


@dataclass(frozen=True)
class LineSetting:
    """The study's line windows before they are resolved on a draw.

    Attributes
    ----------
    lines : str or tuple of float
        ``"nist"``, ``"paper"`` or wavelengths (nm). An older checkpoint's None (the paper's
        lines) arrives here as the paper's wavelengths (:func:`line_setting`).
    half_width : int
        Points each side of a line.
    lines_per_element : int
        For ``nist``.
    source : str
        Where the setting comes from, for messages (a model's pre-training or ``data.lines``).
    """

    lines: str | tuple[float, ...]
    half_width: int
    lines_per_element: int
    source: str

    @property
    def fixed(self) -> bool:
        """Whether the windows are known before a draw (wavelengths, not a selection rule)."""
        return not isinstance(self.lines, str)


def transfer_feature_spec(model) -> dict:
    """The feature spec a transfer model was pre-trained with (from its checkpoint)."""
    from saca_lab.tracking import resolve_checkpoint
    from saca_lab.training.checkpoint import load_checkpoint

    return load_checkpoint(resolve_checkpoint(str(model.transfer_from)))["hyper_parameters"]["feature_spec"]


def check_preprocessing(name: str, spec: dict, airpls: bool, normalize: str) -> None:
    """Refuse a transfer model whose pre-training preprocessed spectra otherwise than the study."""
    if bool(spec.get("airpls")) != airpls or bool(spec.get("minmax")) != (normalize == "minmax"):
        theirs = f"airPLS {'on' if spec.get('airpls') else 'off'}, min-max {'on' if spec.get('minmax') else 'off'}"
        raise InputError(f"--models {name}: it was pre-trained on spectra with {theirs}; the study "
                         f"asks for airPLS {'on' if airpls else 'off'} and --normalize {normalize}, "
                         f"so the baselines would not see its features (match --no-airpls / "
                         f"--normalize to the pre-training)")


def line_setting(deep_cfgs: dict[str, dict], sources: dict[str, dict], defaults: dict) -> LineSetting:
    """The study's line setting from its deep models.

    Parameters
    ----------
    deep_cfgs : dict
        Non-transfer line models -> their study config.
    sources : dict
        Transfer line models -> the feature spec of their pre-training.
    defaults : dict
        The ``data`` section used when the study has no deep line model (baselines only).

    Raises
    ------
    InputError
        Two models with different windows or settings.
    """
    options = {}
    for name, spec in sources.items():
        # None: a checkpoint from before data.lines, which read the paper's lines
        lines = tuple(spec["lines"]) if spec.get("lines") is not None else PAPER_WAVELENGTHS
        options[name] = LineSetting(lines, int(spec["half_width"]), 0, f"{name}'s pre-training")
    if options:
        if len({(s.lines, s.half_width) for s in options.values()}) > 1:
            raise InputError("--models: the transfer models were pre-trained on different line "
                             f"windows ({', '.join(options)}); compare them in separate studies")
        return next(iter(options.values()))
    for name, cfg in deep_cfgs.items():
        data = cfg["data"]
        lines = data["lines"] if data["lines"] is not None else DEFAULTS["data"]["lines"]
        lines = tuple(lines) if isinstance(lines, list) else lines
        options[name] = LineSetting(lines, int(data["half_width"]),
                                    int(data.get("lines_per_element") or 0), "data.lines")
    if len({(s.lines, s.half_width, s.lines_per_element) for s in options.values()}) > 1:
        raise InputError("--models: the line models ask for different data.lines / half_width / "
                         f"lines_per_element ({', '.join(options)}); set them once for all, e.g. "
                         "--set data.lines=nist")
    if options:
        return next(iter(options.values()))
    lines = defaults["lines"] if defaults.get("lines") is not None else DEFAULTS["data"]["lines"]
    return LineSetting(tuple(lines) if isinstance(lines, list) else lines, int(defaults["half_width"]),
                       int(defaults.get("lines_per_element") or 0), "data.lines")


def split_key(split_spec: dict) -> str:
    return json.dumps(split_spec, sort_keys=True, default=str)


def resolve_lines(setting: LineSetting, ds, element: str, split_spec: dict, airpls: bool,
                  minmax: bool) -> tuple[float, ...] | None:
    """The windows a training run on this draw would read, resolved on its training samples.

    The data module that resolves them also writes the shot-averaged features the baselines
    fit into the dataset's feature cache.
    """
    if setting.fixed:
        return setting.lines
    from saca_lab.datasets.datamodules import SpectraDataModule

    kwargs = {"lines_per_element": setting.lines_per_element} if setting.lines_per_element else {}
    dm = SpectraDataModule(ds, targets=[element], input_kind="lines_1d", split=split_spec,
                           shots="average", lines=setting.lines, half_width=setting.half_width,
                           preprocessing={"airpls": airpls_setting(airpls),
                                          "minmax": minmax}, **kwargs)
    try:
        dm.setup()
    except InputError as e:
        raise InputError(f"--features lines: {e}; try --features spectrum or --set data.lines=paper") from None
    if dm.target_names != [element]:
        raise InputError(f"--features lines: {element} has no usable line in {ds.path} "
                         f"(data.lines={setting.lines}); try --features spectrum or "
                         f"--set data.lines=paper")
    return tuple(float(v) for v in dm.feature_spec.lines) if dm.feature_spec.lines is not None else None


def baseline_matrix(ds, features: str, lines, half_width: int, airpls: bool,
                    normalize: str) -> np.ndarray:
    """Per-sample inputs of the baselines (shots averaged; cached on disk): the spectrum, or the
    given line windows, with the deep models' preprocessing."""
    from saca_lab.datasets.features import FeatureSpec, dataset_features

    spec = FeatureSpec("spectrum_1d" if features == "spectrum" else "lines_1d",
                       airpls=airpls_setting(airpls), minmax=normalize == "minmax",
                       lines=None if lines is None else tuple(lines), half_width=half_width)
    x = np.asarray(dataset_features(ds, spec, "average")[:, 0], dtype=np.float32)
    if normalize == "sum":
        # total-intensity normalisation: the usual LIBS correction for shot-to-shot ablated
        # mass; min-max instead pins every spectrum to its strongest line (Na D on the
        # geostandards, which carries no information on SiO2)
        total = x.sum(axis=1, keepdims=True)
        x = x / np.where(total > 0, total, 1.0)
    return x



def describe(plan) -> str:
    """One line for logs and the study's MLflow params: what every model of the study reads."""
    if plan.features != "lines":
        return "spectrum: every model reads the full spectrum"
    setting = plan.lines
    how = setting.lines if isinstance(setting.lines, str) else "fixed wavelengths"
    sets = list(dict.fromkeys(plan.fit_lines.values()))
    first = ("the paper's lines" if sets[0] is None else
             ", ".join(f"{v:.2f}" for v in sets[0]) + " nm")
    return (f"lines: every model of a draw reads the same windows ({how} from {setting.source}, "
            f"half width {setting.half_width}; {len(sets)} distinct set(s) over the draws, "
            f"first {first})")
