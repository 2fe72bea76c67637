"""The typed config schema: every field type-checked through the CLI, before anything runs.

Property-based (hypothesis): for every field of :mod:`saca_lab.schema` (and every argument of a
model's constructor, and every reproduce Mode field), random values of a wrong type given with
``--set`` end in exit code 2 with the dotted field named and no traceback. Dataset resolution,
training, sweep storage and reproduce timing are replaced by a tripwire, so a value that got
through validation fails the test instead of starting work.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saca_lab import schema, typecheck
from saca_lab.chemistry import parse_composition
from saca_lab.cli import main
from saca_lab.config import DEFAULTS, load_config
from saca_lab.errors import InputError
from saca_lab.models import create_model, list_models
from saca_lab.models.registry import accepted_arguments, argument_types
from saca_lab.reproduce.settings import Mode, get_mode

ROOT = Path(__file__).resolve().parents[1]
MODEL = "trcnn_1d"
EXPERIMENT = {"model": {"name": MODEL},
              "data": {"dataset": {"preset": "slag", "samples": 4, "shots": 2}, "targets": ["Mn"],
                       "split": {"train": 0.5, "val": 0.25, "test": 0.25}},
              "train": {"max_epochs": 1}, "tracking": {"log_model": False}}
FAST = settings(max_examples=4, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


class Ran(Exception):
    """Raised by a tripwire: a bad value got past validation and work started."""


def _tripwire(*args, **kwargs):
    raise Ran("validation let a bad value through")


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    """An experiment YAML in tmp_path; anything past validation raises :class:`Ran`."""
    work = tmp_path / "work"  # the MLflow store stays outside: train marks dead runs first
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SACA_LAB_DATA", str(work / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    if importlib.util.find_spec("saca_lab.training.resume"):  # MLflow housekeeping, not config
        monkeypatch.setattr("saca_lab.training.ownership.mark_dead_runs", lambda *a, **k: None)
    for module, name in [("training.run", "run_experiment"), ("datasets.datamodules", "resolve_dataset"),
                         ("datasets.resolve", "resolve_dataset"),  # presets: first generation
                         ("compare.plan", "resolve_study_dataset"),
                         ("reproduce.plan_cost", "measure_step_times"),  # reproduce's first work
                         ("sweeps.runner", "open_storage")]:
        if importlib.util.find_spec(f"saca_lab.{module}"):
            monkeypatch.setattr(f"saca_lab.{module}.{name}", _tripwire)
    path = work / "exp.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT, sort_keys=False))
    return path


def _run(argv, capsys) -> tuple[int, str]:
    """Exit code and stderr; a traceback or a second error line fails the test."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # library log lines (MLflow creating its store) may come first; the error is one line
    assert len([line for line in err.splitlines() if line.startswith("saca-lab")]) <= 1, err
    return code, err


# --- values of a wrong type ------------------------------------------------------------------

def _yaml_text(value) -> str | None:
    """``value`` as --set text that YAML reads back as the same value and type, or None."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    text = text.removesuffix("...").strip()
    back = yaml.safe_load(text)
    return text if back == value and type(back) is type(value) else None


ANY_VALUE = st.one_of(
    st.text(alphabet="abcxyzAB019_-", min_size=1, max_size=8),
    st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(), st.none(),
    st.lists(st.integers(-3, 300), max_size=3),
    st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=4), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["a", "zz"]), st.integers(0, 3), min_size=1, max_size=2),
)


def wrong_values(tp, accepts=typecheck.matches):
    return ANY_VALUE.filter(lambda v: not accepts(v, tp) and _yaml_text(v) is not None)


def _schema_fields(cls=schema.Config, path="") -> list[tuple[str, object]]:
    """Every field of the schema, sections as well as leaves: (dotted path, type)."""
    out = []
    for f in dataclasses.fields(cls):
        where = f"{path}.{typecheck.key_of(f)}" if path else typecheck.key_of(f)
        tp = typecheck.hints(cls)[f.name]
        out.append((where, tp))
        sub = next((m for m in typecheck.members(tp) if dataclasses.is_dataclass(m)), None)
        if sub is not None:
            out += _schema_fields(sub, where)
    return out


SCHEMA_FIELDS = _schema_fields()


def test_the_schema_covers_every_default_and_owns_it():
    known = {p for p, _ in SCHEMA_FIELDS}
    flat = set()

    def walk(d, prefix=""):
        for k, v in d.items():
            (walk(v, f"{prefix}{k}.") if isinstance(v, dict) and v else flat.add(f"{prefix}{k}"))

    walk(DEFAULTS)
    assert flat <= known
    assert DEFAULTS == schema.defaults()
    assert DEFAULTS["train"]["strategy"] == "auto" and DEFAULTS["train"]["checkpoint_every"] == 10
    # a fresh copy each call: callers that mutate DEFAULTS' sections do not change the schema's
    schema.defaults()["train"]["lr"] = -1
    assert schema.defaults()["train"]["lr"] == DEFAULTS["train"]["lr"]


@pytest.mark.parametrize("path, tp", SCHEMA_FIELDS, ids=[p for p, _ in SCHEMA_FIELDS])
@FAST
@given(data=st.data())
def test_wrong_type_of_every_config_field_exits_2_naming_it(guarded, capsys, path, tp, data):
    value = data.draw(wrong_values(tp))
    code, err = _run(["train", str(guarded), "--set", f"{path}={_yaml_text(value)}"], capsys)
    assert code == 2, err
    assert path in err


MODEL_ARGS = sorted(argument_types(MODEL).items())


@pytest.mark.parametrize("name, tp", MODEL_ARGS, ids=[n for n, _ in MODEL_ARGS])
@FAST
@given(data=st.data())
def test_wrong_type_of_every_model_override_exits_2_naming_it(guarded, capsys, name, tp, data):
    value = data.draw(wrong_values(tp))
    code, err = _run(["train", str(guarded), "--set",
                      f"model.overrides.{name}={_yaml_text(value)}"], capsys)
    assert code == 2, err
    assert f"model.overrides.{name}" in err


def _mode_accepts(value, tp) -> bool:
    # a str field takes an integer as its text (YAML reads --set deep_sizes=10 as 10); a tuple
    # field takes a YAML list
    return typecheck.matches(value, tp) or (tp is str and typecheck.is_int(value))


MODE_FIELDS = [(f.name, typecheck.hints(Mode)[f.name]) for f in dataclasses.fields(Mode)
               if f.name != "name"]


@pytest.mark.parametrize("name, tp", MODE_FIELDS, ids=[n for n, _ in MODE_FIELDS])
@FAST
@given(data=st.data())
def test_wrong_type_of_every_reproduce_setting_exits_2_naming_it(guarded, capsys, name, tp, data):
    value = data.draw(wrong_values(tp, _mode_accepts))
    code, err = _run(["reproduce", "--quick", "--quiet", "--set", f"{name}={_yaml_text(value)}"],
                     capsys)
    assert code == 2, err
    assert name in err


# --- every bad input tried, with its message ------------------------------------------------

TRAIN_CASES = [
    ("train.lr=abc", "exp.yaml: train.lr must be a number > 0, got 'abc'"),
    ("train.lr=0", "train.lr must be a number > 0, got 0"),
    ("train.max_epochs=1.5", "train.max_epochs must be an integer >= 1, got 1.5"),
    ("train.lr_schedule=linear", "train.lr_schedule must be 'step', 'cosine' or 'constant'"),
    ("train.lr_step=0", "train.lr_step must be a number > 0 (epochs, or a fraction of"),
    ("train.precision=bf17", "train.precision must be 'auto', '32-true'"),
    ("train.devices=0", "train.devices must be 'auto', -1, an integer >= 1"),
    ("train.limit_train_batches=1.5", "train.limit_train_batches must be null, an integer >= 1"),
    ("train.early_stopping.patience=0", "train.early_stopping.patience must be an integer >= 1"),
    ("train.early_stopping.monitor=x", "unknown field 'train.early_stopping.monitor'"),
    ("data.shots=0", "data.shots must be 'average', 'each' or an integer >= 1"),
    ("data.split.train=abc", "data.split.train must be a number in [0, 1], got 'abc'"),
    ("data.split.test=0.5", "data.split train+val+test = 1.25, must be 1"),
    ("data.split.fold=1", "data.split.fold needs data.split.folds"),
    ("data.split.folds=3", "data.split needs folds >= 2 and 0 <= fold < folds"),
    ("data.targets=Mn", "data.targets must be a non-empty list of strings or null"),
    ("data.lines=[]", "data.lines must be 'nist', 'paper', a non-empty list of numbers > 0"),
    ("data.lines_per_element=true", "data.lines_per_element must be an integer >= 1"),
    ("data.augment.shift_nm=-1", "data.augment.shift_nm must be a number >= 0, got -1"),
    ("data.augment.scale=1.1", "unknown field 'data.augment.scale'"),
    ("data.preprocessing.foo=1", "unknown field 'data.preprocessing.foo'"),
    ("data.preprocessing.airpls.lam=abc", "data.preprocessing.airpls.lam must be a number > 0"),
    ("data.dataset.samples=abc", "data.dataset.samples must be an integer >= 1 or null"),
    ("data.dataset.preset=granite", "data.dataset.preset: unknown preset 'granite'"),
    ("data.dataset.nuisance={dust: 1}", "data.dataset.nuisance: unknown field(s) ['dust']"),
    ("data.dataset=5", "data.dataset must be a string, a mapping or null"),
    ("model.name=resnet99", "model.name: unknown model 'resnet99'"),
    ("model.overrides.n_units=abc", "model.overrides.n_units must be an integer, got 'abc'"),
    ("model.overrides.kernel_sz=3", "model 'trcnn_1d' got unknown argument(s) kernel_sz"),
    ("model.overrides=abc", "model.overrides must be a mapping or null, got 'abc'"),
    ("transfer.unfreeze_lr=abc", "transfer.unfreeze_lr must be a number > 0 or null, got 'abc'"),
    ("transfer.unfreeze_lr=0.1", "transfer.from is required"),
    ("transfer.from=123", "transfer.from must be a string"),
    ("seed=-1", "seed must be an integer in [0, 4294967295], got -1"),
    ("tracking=5", "tracking must be a mapping, got 5"),
    ("tracking.log_model=maybe", "tracking.log_model must be true or false, got 'maybe'"),
    ("trian.max_epochs=1", "unknown field 'trian'"),
]


@pytest.mark.parametrize("item, message", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_train_override_message(guarded, capsys, item, message):
    before = set(guarded.parent.iterdir())
    code, err = _run(["train", str(guarded), "--set", item], capsys)
    assert code == 2 and message in err, err
    assert set(guarded.parent.iterdir()) == before  # nothing written, no dataset generated


def _sweep(tmp_path, **fields) -> Path:
    spec = {"base": "exp.yaml", "space": {"train.lr": {"type": "categorical",
                                                       "choices": [0.01, 0.1]}},
            "sampler": "grid", "objective": {"metric": "val_r2_Mn"}, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize("fields, extra, message", [
    ({"space": {"train.lr": {"type": "categorical", "choices": [0.1, "abc"]}}}, [],
     "space.train.lr='abc': "),
    ({"set": {"data.batch_size": "abc"}}, [], "data.batch_size must be an integer >= 1"),
    ({}, ["--set", "data.batch_size=abc"], "--set: data.batch_size must be an integer >= 1"),
    # model overrides need the model: checked with the base experiment's
    ({}, ["--set", "model.overrides.n_units=abc"], "model.overrides.n_units must be an integer"),
])
def test_bad_sweep_values(guarded, capsys, fields, extra, message):
    path = _sweep(guarded.parent, **fields)
    code, err = _run(["sweep", "run", str(path), *extra], capsys)
    assert code == 2 and message in err, err
    if fields.get("space"):
        assert "train.lr must be a number > 0, got 'abc'" in err


@pytest.mark.parametrize("item, message", [
    ("train.lr=abc", "--set: train.lr must be a number > 0, got 'abc'"),
    ("gll.train.max_epochs=abc", "train.max_epochs must be an integer >= 1, got 'abc'"),
    ("data.split.foo=1", "unknown field 'data.split.foo'"),
    ("pso_svr.n_iter=abc", "pso_svr.n_iter must be an integer, got 'abc'"),
    ("pso_svr.log_C_bounds=[1]", "pso_svr.log_C_bounds must be a list of 2 numbers, got [1]"),
    ("plsr.max_components=abc", "plsr.max_components must be an integer, got 'abc'"),
])
def test_bad_compare_override_fails_before_the_dataset(guarded, capsys, item, message):
    code, err = _run(["compare", "--dataset", "slag", "--element", "Mn", "--models", "plsr,gll",
                      "--set", item], capsys)
    assert code == 2 and message in err, err


@pytest.mark.parametrize("item, message", [
    ("compare_repeats=abc", "--set compare_repeats must be an integer, got 'abc'"),
    ("seeds=[a]", "--set seeds must be a list of integers, got ('a',)"),
    ("sweep_trials=1.5", "--set sweep_trials must be an integer or null, got 1.5"),
    ("slag=5", "--set slag must be a mapping or a string, got 5"),
    ("transfer_unfreeze_lr=abc", "--set transfer_unfreeze_lr must be a number, got 'abc'"),
])
def test_reproduce_mode_fields_are_type_checked(item, message):
    with pytest.raises(InputError) as err:
        get_mode("quick", [item])
    assert message in str(err.value)


def test_reproduce_mode_accepts_its_types():
    mode = get_mode("quick", ["compare_repeats=2", "seeds=[0, 1]", "deep_sizes=10",
                              "slag=/some/dataset", "sweep_trials=null", "shots=each"])
    assert (mode.compare_repeats, mode.seeds, mode.deep_sizes) == (2, (0, 1), "10")
    assert mode.slag == "/some/dataset" and mode.sweep_trials is None and mode.shots == "each"


@pytest.mark.parametrize("text, message", [
    ("Fe=50,Fe=50", "Fe is given twice"),
    ("Fe=98, Mn=1, Mn =1", "Mn is given twice"),
    ("SiO2=40,CaO=30,SiO2=10", "SiO2 is given twice"),
])
def test_repeated_element_is_refused(text, message, tmp_path, capsys):
    with pytest.raises(InputError, match=message):
        parse_composition(text)
    out = tmp_path / "x.csv"
    code, err = _run(["simulate", "--composition", text, "--out", str(out)], capsys)
    assert code == 2 and message in err and not out.exists()


def test_a_key_given_twice_is_refused(guarded, capsys):
    guarded.write_text(guarded.read_text() + "seed: 1\nseed: 2\n")
    code, err = _run(["train", str(guarded)], capsys)
    assert code == 2 and "exp.yaml: 'seed' is given twice (line" in err, err
    with pytest.raises(InputError, match="'preset' is given twice"):
        get_mode("quick", ["slag={preset: slag, preset: stainless}"])


def test_every_model_argument_has_a_checked_type():
    for name in list_models():
        assert set(accepted_arguments(name)) <= set(argument_types(name)), name
    with pytest.raises(InputError, match="argument n_units must be an integer, got 'abc'"):
        create_model(MODEL, n_units="abc")
    assert create_model("gll", hidden=16) is not None  # an int is one hidden layer


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "experiments" / "*.yaml"))),
                         ids=lambda p: Path(p).name)
def test_shipped_experiments_pass_the_schema(path):
    load_config(path)


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("1E4", 10000.0), ("-2.5e+3", -2500.0),
                                         ("[1e-3, 2]", [0.001, 2]), ("e5", "e5"), ("2024", 2024)])
def test_exponent_numbers_are_floats_as_in_yaml_1_2(text, value):
    """PyYAML (YAML 1.1) reads 1e-3 as a string; a learning rate written that way must work."""
    from saca_lab.config import parse_value

    assert parse_value(text) == value and type(parse_value(text)) is type(value)
