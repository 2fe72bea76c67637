"""Experiment files that extend others (``base:``), and the one ``--set`` parser of every verb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saca_lab.config import DEFAULTS, apply_overrides, load_config, parse_override, read_experiment
from saca_lab.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
TRCSL_FAMILY = sorted(EXPERIMENTS.glob("trc*_pretrain_slag.yaml")) + \
    sorted(EXPERIMENTS.glob("trc*_finetune_carbon_steel.yaml"))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_child_extends_its_base_and_nested_bases(tmp_path):
    _write(tmp_path / "common" / "root.yaml",
           "data: {targets: [Mn], shots: 5, split: {train: 0.6, val: 0.1, test: 0.3, seed: 4}}\n"
           "train: {max_epochs: 7, lr: 0.5}\n")
    _write(tmp_path / "common" / "mid.yaml",
           "base: root.yaml\nmodel: {name: trcnn_1d, overrides: {n_units: 2}}\n"
           "data: {dataset: {preset: slag}, split: {seed: 9}}\n")
    child = _write(tmp_path / "child.yaml",
                   "base: common/mid.yaml\nmodel: {overrides: {kernels: 4}}\n"
                   "data: {targets: [Cr, Mn]}\ntrain: {lr: 0.25}\n")
    cfg = load_config(child)
    assert cfg["model"] == {"name": "trcnn_1d", "overrides": {"n_units": 2, "kernels": 4}}
    # mappings merge key by key; a list or a number in the child replaces the base's
    assert cfg["data"]["split"] == {**DEFAULTS["data"]["split"], "train": 0.6, "val": 0.1,
                                    "test": 0.3, "seed": 9}
    assert cfg["data"]["targets"] == ["Cr", "Mn"] and cfg["data"]["shots"] == 5
    assert cfg["train"]["lr"] == 0.25 and cfg["train"]["max_epochs"] == 7
    # the name is the loaded file's, not a base's
    assert cfg["name"] == "child" and cfg["tracking"]["experiment"] == "child"
    assert "base" not in read_experiment(child)


def test_overrides_apply_after_the_bases(tmp_path):
    _write(tmp_path / "b.yaml", "model: {name: trcnn_1d}\ndata: {dataset: {preset: slag}}\n"
                                "train: {lr: 0.5}\n")
    child = _write(tmp_path / "c.yaml", "base: b.yaml\ntrain: {max_epochs: 3}\n")
    cfg = load_config(child, ["train.lr=1e-3", ("data.targets", ["Mn"])])
    assert cfg["train"]["lr"] == 0.001 and cfg["train"]["max_epochs"] == 3
    assert cfg["data"]["targets"] == ["Mn"]


@pytest.mark.parametrize("files, culprit", [
    ({"a.yaml": "base: a.yaml\n"}, "a.yaml"),
    ({"a.yaml": "base: b.yaml\nmodel: {name: trcnn_1d}\n", "b.yaml": "base: sub/c.yaml\n",
      "sub/c.yaml": "base: ../a.yaml\n"}, "c.yaml"),
])
def test_a_cycle_of_bases_is_refused_naming_the_file(tmp_path, files, culprit):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(InputError, match=rf"{culprit}: base: .*a\.yaml includes itself"):
        load_config(tmp_path / "a.yaml")


def test_a_missing_base_is_refused_naming_both_files(tmp_path):
    child = _write(tmp_path / "child.yaml", "base: nowhere/parent.yaml\nmodel: {name: trcnn_1d}\n")
    with pytest.raises(InputError, match=r"child\.yaml: base: .*nowhere/parent\.yaml not found"):
        load_config(child)


@pytest.mark.parametrize("text, message", [
    ("base: [a.yaml]\n", "base must be the path of another experiment file"),
    ("base: ''\n", "base must be the path of another experiment file"),
    ("base: p.yaml\n", r"p\.yaml: an experiment file is a mapping"),
    ("base: q.yaml\n", r"q\.yaml: invalid YAML"),  # a Python tag: the safe loader refuses it
    ("base: r.yaml\n", r"r\.yaml: 'lr' is given twice"),
])
def test_a_bad_base_is_refused_naming_the_file(tmp_path, text, message):
    _write(tmp_path / "p.yaml", "- a list\n")
    _write(tmp_path / "q.yaml", "model: !!python/object/apply:os.system [echo hi]\n")
    _write(tmp_path / "r.yaml", "train: {lr: 0.1, lr: 0.2}\n")
    with pytest.raises(InputError, match=message):
        load_config(_write(tmp_path / "child.yaml", text))


def test_the_base_files_are_not_experiments():
    """experiments/base/ holds fragments; a run names a child, whose stem names the run."""
    with pytest.raises(InputError, match="model.name is required"):
        load_config(EXPERIMENTS / "base" / "trcsl.yaml")


@pytest.mark.parametrize("path", TRCSL_FAMILY, ids=lambda p: p.stem)
def test_the_trcsl_family_resolves_to_its_protocol(path):
    """Each of the 16 files is its model (and, fine-tuning, its source run) on one shared protocol."""
    cfg = load_config(path)
    model = path.stem.split("_pretrain_slag")[0].split("_finetune_carbon_steel")[0]
    assert cfg["model"] == {"name": model, "overrides": {}}
    assert cfg["name"] == cfg["tracking"]["experiment"] == path.stem
    assert cfg["data"]["targets"] == ["C", "Cu", "Mn", "Cr"] and cfg["data"]["shots"] == 30
    assert cfg["data"]["split"] == {**DEFAULTS["data"]["split"], "train": 0.7, "val": 0.0, "test": 0.3}
    assert {k: cfg["train"][k] for k in ("max_epochs", "lr", "lr_schedule", "lr_step")} == \
        {"max_epochs": 800, "lr": 0.001, "lr_schedule": "cosine", "lr_step": 0.125}
    if "finetune" in path.stem:
        assert cfg["data"]["dataset"] == {"preset": "carbon-steel"} and cfg["data"]["batch_size"] == 16
        assert cfg["train"]["weight_decay"] == 0.0001
        assert cfg["transfer"]["from"] == f"experiment:{model}_pretrain_slag"
        assert (EXPERIMENTS / f"{model}_pretrain_slag.yaml").is_file()
    else:
        assert cfg["data"]["dataset"] == {"preset": "slag"} and cfg["data"]["batch_size"] == 32
        assert cfg["train"]["weight_decay"] == 0.0 and cfg["transfer"] is None


def test_the_trcsl_family_is_complete():
    names = {p.stem for p in TRCSL_FAMILY}
    models = [f"{m}{d}" for m in ("trcsl", "trcnn", "trcnn_se", "trcnn_lstm") for d in ("", "_1d")]
    assert names == {f"{m}_{kind}" for m in models for kind in ("pretrain_slag", "finetune_carbon_steel")}


# --- one parser for every verb's --set ---------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("[Mn, Cr]", ["Mn", "Cr"]), ("'0,1'", "0,1"), ("null", None),
    ("{preset: slag, samples: 40}", {"preset": "slag", "samples": 40}), (" 7 ", 7), ("a=b", "a=b"),
])
def test_parse_override_types_the_value(text, value):
    key, parsed = parse_override(f" data.x ={text}")
    assert key == "data.x" and parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("item", ["train.lr", "=3", "  =3"])
def test_parse_override_needs_key_and_value(item):
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_override(item)


def test_every_verb_reads_the_same_text_as_the_same_value(tmp_path):
    """``train``, ``sweep``, ``compare`` and ``reproduce`` all go through parse_override:
    YAML 1.2 exponent floats (PyYAML alone reads ``1e-3`` as a string) come out alike."""
    from saca_lab.compare.plan import overrides_for, split_overrides
    from saca_lab.reproduce.settings import get_mode
    from saca_lab.sweeps.spec import load_sweep

    expected = parse_override("x=1e-3")[1]
    assert expected == 0.001 and isinstance(expected, float)
    exp = EXPERIMENTS / "trcsl_1d_pretrain_slag.yaml"
    # train
    assert load_config(exp, ["train.lr=1e-3"])["train"]["lr"] == expected
    # sweep: --set reaches every trial's config
    sweep = _write(tmp_path / "s.yaml", f"base: {exp}\nset: {{data.split: {{train: 0.6, val: 0.1, "
                                        f"test: 0.3}}}}\nspace:\n  model.overrides.dropout: "
                                        f"{{type: float, low: 0.1, high: 0.5}}\nsampler: random\n"
                                        f"n_trials: 2\nobjective: {{metric: val_loss}}\n")
    spec = load_sweep(sweep)
    trial = spec.trial_config({"model.overrides.dropout": 0.25}, ["train.lr=1e-3"])
    assert trial["train"]["lr"] == expected and trial["model"]["overrides"]["dropout"] == 0.25
    # compare: a baseline parameter, and a deep-config item (scoped to one model)
    params, deep = split_overrides(["pso_svr.log_C_bounds=[1e-3, 2e0]", "trcsl_1d.train.lr=1e-3"])
    assert params == {"pso_svr": {"log_C_bounds": [expected, 2.0]}}
    assert load_config(exp, overrides_for(deep, "trcsl_1d", ["trcsl_1d"]))["train"]["lr"] == expected
    # reproduce: a mode field
    assert get_mode("quick", ["transfer_unfreeze_lr=1e-3"]).transfer_unfreeze_lr == expected


def test_typed_overrides_are_applied_as_they_are():
    """A value code holds (a sweep's ``set`` and trial parameters, a plan file's fields) is not
    written to YAML text and read back: ``"on"`` stays a string, ``"1e-3"`` stays text."""
    cfg = apply_overrides({}, [("tracking.run_name", "on"), ("data.targets", ["1e-3"]),
                               "train.lr=1e-3"])
    assert cfg == {"tracking": {"run_name": "on"}, "data": {"targets": ["1e-3"]}, "train": {"lr": 0.001}}
    with pytest.raises(InputError, match="unknown field 'trian'"):
        apply_overrides({}, [("trian.lr", 1.0)])


def test_reproduce_mode_takes_typed_fields():
    from saca_lab.reproduce.settings import get_mode

    mode = get_mode("quick", [("seeds", [3, 4]), ("compare_sizes", "10,20")])
    assert mode.seeds == (3, 4) and mode.compare_sizes == "10,20" and mode.name == "quick-custom"
    with pytest.raises(InputError, match="expected FIELD=VALUE"):
        get_mode("quick", [("nope", 1)])


def test_sweep_fingerprint_follows_the_base_files(tmp_path):
    from saca_lab.sweeps.spec import load_sweep

    base = _write(tmp_path / "exp" / "common.yaml", "model: {name: trcnn_1d}\n"
                  "data: {dataset: {preset: slag}, split: {train: 0.6, val: 0.1, test: 0.3}}\n")
    child = _write(tmp_path / "exp" / "child.yaml", "base: common.yaml\n")
    sweep = _write(tmp_path / "s.yaml", f"base: {child}\nspace:\n  model.overrides.dropout: "
                                        f"{{type: float, low: 0.1, high: 0.5}}\nsampler: random\n"
                                        f"n_trials: 2\nobjective: {{metric: val_loss}}\n")
    before = load_sweep(sweep).fingerprint()
    base.write_text("# a comment changes nothing\n" + base.read_text())
    assert load_sweep(sweep).fingerprint() == before
    base.write_text(base.read_text().replace("val: 0.1, test: 0.3", "val: 0.2, test: 0.2"))
    assert load_sweep(sweep).fingerprint() != before


def test_code_defaults_come_from_the_schema():
    """The airPLS and split defaults are written once (schema.py); the transformer, the feature
    spec and the data module read them."""
    from saca_lab.datasets.datamodules import SpectraDataModule
    from saca_lab.datasets.features import FeatureSpec
    from saca_lab.preprocessing import AirPLS

    airpls = dict(DEFAULTS["data"]["preprocessing"]["airpls"])
    assert {k: AirPLS().get_params()[k] for k in airpls} == airpls
    assert FeatureSpec("spectrum_1d").airpls == airpls
    dm = SpectraDataModule({"preset": "slag"})
    assert dm.feature_spec.airpls == airpls and dm.feature_spec.half_width == DEFAULTS["data"]["half_width"]
    assert json.dumps(dm.split_spec, sort_keys=True) == \
        json.dumps({k: v for k, v in DEFAULTS["data"]["split"].items() if k != "subset_seed"},
                   sort_keys=True)
    dm.feature_spec.airpls["lam"] = -1.0  # a data module's copy, not the defaults
    assert DEFAULTS["data"]["preprocessing"]["airpls"] == airpls
    assert SpectraDataModule({"preset": "slag"}).feature_spec.airpls == airpls


def test_a_base_that_names_an_experiment_is_refused(tmp_path):
    _write(tmp_path / "b.yaml", "name: shared\nmodel: {name: trcnn_1d}\n")
    child = _write(tmp_path / "c.yaml", "base: b.yaml\n")
    with pytest.raises(InputError, match=r"b.yaml: a base file must not set name"):
        load_config(child)
