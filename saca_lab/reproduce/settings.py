"""How big a reproduction is: the papers' protocols (``FULL``) or a 15-minute CPU run (``QUICK``).

Every reduction is a field here, and the report prints the mode it ran, so a reader can see
what "quick" left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from saca_lab.config import Override, parse_override
from saca_lab.errors import InputError
from saca_lab.typecheck import check_field


@dataclass(frozen=True)
class Mode:
    """Sizes of one reproduction.

    Attributes
    ----------
    name : str
        ``quick``, ``full`` or a custom label (tests).
    slag, carbon_steel, stainless : dict
        Dataset specs (``{preset, samples, shots}``) for TrCSL pre-training, transfer and SACA.
    dims : str
        ``2d`` (TrCSL Table 1: 125 x 131 spectral images) or ``1d`` (characteristic-line
        windows, the ``*_1d`` models: ~20x cheaper on a CPU) for Fig. 11, 12, 14 and 15.
    shots : int or str
        ``data.shots`` for the TrCSL runs (k: mean of each k consecutive shots).
    pretrain_epochs, finetune_epochs : int
        TrCSL Table 1 says 800 for both.
    seeds : tuple of int
        Split seeds of Fig. 11/12 (each seed = one pre-train + fine-tune pair per model).
    sweep_epochs : int
        Epochs of every sweep trial (Fig. 9, S3, S4).
    sweep_set : tuple of str
        Extra ``--set`` overrides for sweep trials.
    sweep_trials : int or None
        Trials per sweep (None: the whole grid of each shipped sweep file).
    compare_sizes, compare_repeats : str, int
        Fig. 14 sample counts and random subsets per count.
    compare_models : str
        Baselines of Fig. 14.
    pso : dict
        Swarm settings for PSO-SVR in Fig. 14.
    deep_sizes : str
        Carbon-steel sample counts of the deep models in Fig. 14/15 (10 and 20 in the paper).
    deep_repeats : int
        Random subsets per deep size.
    gll_epochs : int
        Epochs of GLL (trained from scratch) in Fig. 15 and the transfer study.
    transfer_sizes, transfer_repeats : str, int
        The transfer study (``transfer``): carbon-steel sample counts and random 7:3 draws by
        sample per count; every model of the study is fitted on the same draws. Full mode adds
        5 samples (issue 15: a 7:3 split of 5 trains on 3 and tests on 2); quick leaves it out,
        its 40 more fits would push the quick plan past its 15-minute budget.
    transfer_unfreeze_lr : float
        Learning rate of the feature extractor when all layers are fine-tuned (model (b)); the
        head keeps the experiment's ``train.lr``.
    transfer_scratch_epochs : int
        Epochs of the TrCSL network trained from scratch on carbon steel (model (c)); fixed in
        advance, as every epoch count here, because no choice may look at the test samples.
        The fine-tuned models use ``finetune_epochs`` and GLL ``gll_epochs``.
    saca_model, saca_epochs : str, int
        SACA network and its epoch cap (early stopping usually ends it first).
    saca_seeds : tuple of int
        Split seeds of SACA Table 1 (one training run each; the table gives mean +- std).
    saca_shots : int or str
        ``data.shots`` of the SACA run: k averages each k consecutive shots (a CPU-sized number
        of spectra), ``"each"`` trains on single shots.
    speed_samples : int
        Spectra timed end to end for the SACA speed claim.
    clean_vs_calibrated : bool
        Rerun Fig. 14 and the transfer study with ``nuisance: none`` beside the datasets' own
        (calibrated) nuisance, for the report's "clean vs calibrated" section
        (:mod:`saca_lab.reproduce.clean_vs_calibrated`); it doubles the cost of both. False
        leaves it out of a whole report; ``--only clean_vs_calibrated`` still runs it.
    """

    name: str
    slag: dict | str = field(default_factory=lambda: {"preset": "slag"})
    carbon_steel: dict | str = field(default_factory=lambda: {"preset": "carbon-steel"})
    stainless: dict | str = field(default_factory=lambda: {"preset": "stainless"})
    dims: str = "2d"
    shots: int | str = 30
    pretrain_epochs: int = 800
    finetune_epochs: int = 800
    seeds: tuple[int, ...] = (0, 1, 2)
    sweep_epochs: int = 200
    sweep_set: tuple[str, ...] = ()
    sweep_trials: int | None = None
    compare_sizes: str = "10:100:10"
    compare_repeats: int = 5
    compare_models: str = "plsr,pso_svr"
    pso: dict = field(default_factory=dict)
    deep_sizes: str = "10,20"
    deep_repeats: int = 3
    gll_epochs: int = 300
    transfer_sizes: str = "5,10,20"
    transfer_repeats: int = 20
    transfer_unfreeze_lr: float = 1e-4
    transfer_scratch_epochs: int = 800
    saca_model: str = "resnet_dcnn"
    saca_epochs: int = 200
    saca_shots: int | str = 5
    saca_seeds: tuple[int, ...] = (0, 1, 2)
    speed_samples: int = 50
    clean_vs_calibrated: bool = True

    def as_dict(self) -> dict:
        return asdict(self)

    def model(self, name: str) -> str:
        """Registered name of a TrCSL-family model in this mode's dimensionality."""
        return f"{name}_1d" if self.dims == "1d" else name


FULL = Mode("full")

QUICK = Mode(
    "quick",
    slag={"preset": "slag", "samples": 100, "shots": 20},
    carbon_steel={"preset": "carbon-steel", "samples": 20, "shots": 20},
    stainless={"preset": "stainless", "samples": 100, "shots": 5},
    dims="1d",
    shots=10,
    pretrain_epochs=150,
    finetune_epochs=150,
    seeds=(0,),
    sweep_epochs=30,
    compare_sizes="10:100:10",
    compare_repeats=5,
    pso={"n_particles": 8, "n_iter": 6},
    deep_sizes="10,20",
    deep_repeats=3,
    gll_epochs=60,
    transfer_sizes="10,20",
    transfer_repeats=10,
    transfer_scratch_epochs=150,
    saca_model="resnet_dcnn_small",
    # single shots (5 spectra per sample) for 12 epochs: validation loss 0.36 against 0.37 for
    # 5-shot means over 60 epochs at about the same compute, and 0.49 for the earlier 30 epochs
    # of 5-shot means (BENCHMARKS.md "SACA", quick mode; chosen on validation samples only)
    saca_epochs=12,
    saca_shots=1,
    saca_seeds=(0,),
    speed_samples=20,
    clean_vs_calibrated=False,
)

MODES = {"quick": QUICK, "full": FULL}


def get_mode(name: str, overrides: Sequence[Override] = ()) -> Mode:
    """A named mode with ``FIELD=VALUE`` changes (values are YAML: ``3``, ``"10,20"``,
    ``{preset: slag, samples: 40}``, or a dataset directory for the dataset fields), or
    ``(FIELD, value)`` pairs of typed values (a plan file's ``set``)."""
    if name not in MODES:
        raise InputError(f"unknown mode {name!r}; choose from {sorted(MODES)}")
    mode = MODES[name]
    names = {f.name for f in fields(Mode)} - {"name"}
    changes = {}
    for item in overrides:
        key, value = parse_override(item) if isinstance(item, str) else item
        if key not in names:
            raise InputError(f"--set {key!r}: expected FIELD=VALUE with FIELD one of {sorted(names)}")
        if isinstance(getattr(mode, key), tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = check_field(Mode, key, value, f"--set {key}")  # the field's annotated type
    if changes.get("dims", mode.dims) not in ("1d", "2d"):
        raise InputError(f"--set dims={changes['dims']!r}: expected 1d or 2d")
    return replace(mode, name=f"{name}-custom", **changes) if changes else mode


def _field_docs() -> dict[str, str]:
    """Each field's description in :class:`Mode`'s Attributes section."""
    lines = (Mode.__doc__ or "").split("Attributes\n    ----------\n", 1)[-1].splitlines()
    docs, names, text = {}, [], []

    def flush() -> None:
        for name in names:
            docs[name] = re.sub(r":\w+:`", "`", " ".join(text).replace("``", "`"))

    for line in lines:
        if line.startswith("    ") and not line.startswith("        ") and " : " in line:
            flush()
            names, text = [n.strip() for n in line.split(" : ")[0].split(",")], []
        elif line.startswith("        "):
            text.append(line.strip())
    flush()
    return docs


def _markdown_value(value) -> str:
    """A mode value as the YAML that ``--set FIELD=VALUE`` accepts."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_markdown_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_markdown_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def quick_mode_markdown() -> str:
    """The README's table of what ``--quick`` changes: every :class:`Mode` field in which
    ``QUICK`` differs from ``FULL``, with both values and the field's description.

    Returns
    -------
    str
        Markdown, one table row per differing field; the README's quick-mode block holds exactly
        this text (``tests/test_readme.py`` checks it).
    """
    docs = _field_docs()
    rows = ["| field | `--quick` | full mode | what it sets |", "|---|---|---|---|"]
    for f in fields(Mode):
        quick, full = getattr(QUICK, f.name), getattr(FULL, f.name)
        if f.name != "name" and quick != full:
            rows.append(f"| `{f.name}` | `{_markdown_value(quick)}` | `{_markdown_value(full)}` "
                        f"| {docs.get(f.name, '')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m saca_lab.reproduce.settings --markdown")
    sys.stdout.write(quick_mode_markdown())
