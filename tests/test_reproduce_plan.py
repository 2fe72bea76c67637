"""`saca-lab reproduce --budget / --plan / --plan-file`: the plan, its cuts, its file, and that
what runs is what it says. The step-time probe is replaced by fixed numbers wherever the plan's
content is asserted, so no test depends on this machine's speed."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import yaml

from saca_lab.cli import main
from saca_lab.reproduce import plan as plan_mod
from saca_lab.reproduce import plan_cost, plan_file
from saca_lab.reproduce.settings import get_mode

#: An AVX2-like machine (2D trcsl ~2.2 s per step in fp32) and an AMX-like one.
SLOW = {"step_seconds": {"trcsl_1d": 0.03, "trcsl": 2.2, "resnet_dcnn_small": 0.15},
        "precision": {"trcsl_1d": "32-true", "trcsl": "32-true", "resnet_dcnn_small": "32-true"},
        "airpls_seconds": 0.005, "probe_steps": {"trcsl_1d": 25, "trcsl": 3, "resnet_dcnn_small": 14},
        "machine": "test machine"}
FAST = {**SLOW, "step_seconds": {"trcsl_1d": 0.02, "trcsl": 0.2, "resnet_dcnn_small": 0.12}}


def _tiny(train_data, stainless_data) -> list[str]:
    sets = {"slag": train_data["slag"], "carbon_steel": train_data["carbon-steel"],
            "stainless": stainless_data}
    return [f"{k}={v}" for k, v in sets.items()] + ["shots=5", "sweep_epochs=6", "sweep_trials=1"]


@pytest.fixture
def fake_probe(monkeypatch):
    calls = []

    def probe(models, steps=plan_cost.PROBE_STEPS):
        calls.append(dict(models))
        return json.loads(json.dumps(SLOW))

    monkeypatch.setattr(plan_cost, "measure_step_times", probe)
    return calls


def test_probe_times_each_model_with_the_precision_auto_picks(monkeypatch):
    monkeypatch.setenv("SACA_LAB_NATIVE_BF16", "0")
    out = plan_cost.measure_step_times({"one": ("trcsl_1d", 4)}, steps=2, min_seconds=0)
    assert out["step_seconds"]["one"] > 0 and out["probe_steps"] == {"one": 2}
    assert out["precision"] == {"one": "32-true"} and out["airpls_seconds"] > 0


def test_no_cut_within_budget_and_none_without_budget(tmp_path):
    for budget in (None, 1e6):
        plan = plan_mod.make_plan("quick", budget_minutes=budget, measured=SLOW, data_root=str(tmp_path))
        assert plan.cuts == [] and not plan.over_budget and plan.build_mode() == get_mode("quick")
        assert plan.fig9_2d == {"epochs": 30, "values": plan_mod.fig9_grid()}
        assert set(plan.estimate) == set(plan.only) and plan.total_minutes > 0


def test_cuts_follow_the_documented_order(tmp_path):
    def plan_at(budget):
        return plan_mod.make_plan("quick", budget_minutes=budget, measured=SLOW, data_root=str(tmp_path))

    full = plan_at(None).total_minutes
    grid = plan_mod.fig9_grid()
    # a little under the uncut estimate: 2D epochs shrink first, every value still runs
    mild = plan_at(full - 1)
    assert mild.fig9_2d["values"] == grid and mild.fig9_2d["epochs"] < 30
    assert mild.build_mode() == get_mode("quick")
    assert mild.total_minutes <= full - 1
    # far below: every floor, repeats at their floors, over budget, and it says so
    tiny = plan_at(0.01)
    assert tiny.over_budget and tiny.fig9_2d["epochs"] == plan_mod.FIG9_LAST_EPOCHS
    assert all(len(v) == plan_mod.FIG9_MIN_VALUES for v in tiny.fig9_2d["values"].values())
    assert tiny.fig9_2d["values"]["n_units"] == [3, 4]  # the paper's 2D optimum 4 and a neighbour
    cut = tiny.build_mode()
    assert {k: getattr(cut, k) for k, _ in plan_mod.REPEAT_FLOORS} == dict(plan_mod.REPEAT_FLOORS)
    assert cut == replace(get_mode("quick"), name="quick-custom", **dict(plan_mod.REPEAT_FLOORS))
    text = "\n".join(tiny.cuts)
    assert "why: estimated" in text and "2D trcsl 2.200 s/step" in text and "30 -> 2 epochs" in text
    # the repeats are cut only once Fig. 9's 2D trials are at 2 values and 5 epochs
    for budget in [tiny.total_minutes + d for d in (0.5, 1, 2, 4, 8)]:
        plan = plan_at(budget)
        assert plan.build_mode() == get_mode("quick") or plan.fig9_2d["epochs"] <= plan_mod.FIG9_MIN_EPOCHS and all(
            len(v) == plan_mod.FIG9_MIN_VALUES for v in plan.fig9_2d["values"].values())
    assert tiny.build_mode().transfer_repeats == 3
    # a faster machine needs fewer cuts for the same budget
    fast = plan_mod.make_plan("quick", budget_minutes=full - 1, measured=FAST, data_root=str(tmp_path))
    assert fast.fig9_2d["epochs"] >= mild.fig9_2d["epochs"]


def test_only_without_fig9_never_cuts_fig9(tmp_path):
    plan = plan_mod.make_plan("quick", only=["transfer"], budget_minutes=0.01, measured=SLOW,
                              data_root=str(tmp_path))
    assert plan.fig9_2d["epochs"] == 30 and plan.fig9_2d["values"] == plan_mod.fig9_grid()
    assert plan.set["transfer_repeats"] == 3 and list(plan.estimate) == ["transfer"]


def test_plan_file_round_trip(tmp_path):
    plan = plan_mod.make_plan("quick", ["compare_repeats=4"], budget_minutes=0.01, measured=SLOW,
                              data_root=str(tmp_path))
    path = plan.save(tmp_path / "plan.yaml")
    again = plan_file.load_plan(path)
    assert again.as_dict() == plan.as_dict()
    assert again.build_mode() == plan.build_mode()
    assert again.build_mode().compare_repeats == 2  # the user's 4, then halved to its floor
    path.write_text(json.dumps(plan.as_dict()))  # JSON is read too
    assert plan_file.load_plan(path).as_dict() == plan.as_dict()


@pytest.mark.parametrize("change, field", [
    (lambda p: p.update(colour="red"), "colour"),
    (lambda p: p.update(version=9), "version"),
    (lambda p: p.update(mode="medium"), "mode"),
    (lambda p: p["set"].update(compare_repeats=-1), "set.compare_repeats"),
    (lambda p: p["set"].update(seeds="0,1"), "set.seeds"),
    (lambda p: p["set"].update(warp=1), "set.warp"),
    (lambda p: p.update(only=["fig99"]), "only"),
    (lambda p: p["fig9_2d"].update(epochs=0), "fig9_2d.epochs"),
    (lambda p: p["fig9_2d"]["values"].update(n_units=[7]), "fig9_2d.values.n_units"),
    (lambda p: p["fig9_2d"]["values"].update(kernels=[32, 32]), "fig9_2d.values.kernels"),
    (lambda p: p.update(budget_minutes="soon"), "budget_minutes"),
    (lambda p: p["measured"].update(step_seconds={"trcsl": "fast"}), "measured.step_seconds"),
])
def test_bad_plan_file_exits_2_naming_the_field(change, field, tmp_path, capsys, mlflow_tmp):
    raw = plan_mod.make_plan("quick", measured=SLOW, data_root=str(tmp_path)).as_dict()
    change(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["reproduce", "--plan-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {field}" in err or f"{path}: {field.split('.')[0]}" in err and field in err, err


def test_plan_file_excludes_other_settings(tmp_path, capsys, mlflow_tmp):
    path = plan_mod.make_plan("quick", measured=SLOW, data_root=str(tmp_path)).save(tmp_path / "p.yaml")
    assert main(["reproduce", "--plan-file", str(path), "--only", "fig8"]) == 2
    assert "--only" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--budget", "0", "--plan"]) == 2


def test_plan_flag_writes_the_plan_without_training(fake_probe, tmp_path, mlflow_tmp, capsys, monkeypatch):
    from saca_lab.reproduce import runner

    monkeypatch.setattr(runner, "run_reproduce", lambda *a, **k: pytest.fail("--plan trained"))
    argv = ["reproduce", "--quick", "--plan", str(tmp_path / "p.yaml"), "--budget", "0.01",
            "--set", "slag={preset: slag, samples: 8, shots: 10}", "--data-root", str(tmp_path / "data")]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "est. min" in out and "fig9" in out and "Cuts:" in out and "2.2000 s/step" in out
    plan = plan_file.load_plan(tmp_path / "p.yaml")
    assert plan.over_budget and plan.budget_minutes == 0.01 and fake_probe
    assert plan.set["slag"] == {"preset": "slag", "samples": 8, "shots": 10}
    assert not (mlflow_tmp / "mlflow.db").exists() and not (mlflow_tmp / "mlruns").exists()
    assert not (tmp_path / "data").exists()  # nothing simulated either
    # default path: OUT/plan.yaml
    assert main(["reproduce", "--quick", "--plan", "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "plan.yaml").is_file()


def test_fig9_runs_the_plans_values_and_epochs(tmp_path, monkeypatch):
    """The plan reaches the sweeps: each axis as a 1D study (whole grid, the mode's epochs) and a
    2D study (the plan's values and epochs). Nothing is trained: run_sweep is recorded."""
    import saca_lab.sweeps as sweeps
    from saca_lab.reproduce import figs_sweeps
    from saca_lab.reproduce.context import Context
    from saca_lab.reproduce.settings import get_mode
    from saca_lab.sweeps.spec import load_sweep

    calls = []

    def fake_run(path, n_trials=None, study_name=None, overrides=(), progress=True):
        spec = load_sweep(path)
        calls.append((spec.grid, n_trials, list(overrides)))

    def fake_report(name, out_dir=None):
        return {"trials": [], "direction": "maximize", "plots": [], "metric": "val_r2_Mn"}

    monkeypatch.setattr(sweeps, "run_sweep", fake_run)
    monkeypatch.setattr(sweeps, "sweep_report", fake_report)
    plan = plan_mod.make_plan("quick", budget_minutes=0.01, measured=SLOW, data_root=str(tmp_path))
    ctx = Context(get_mode("quick"), tmp_path, progress=False)
    ctx.plan = plan
    figs_sweeps.fig9(ctx)
    grid = plan_mod.fig9_grid()
    assert len(calls) == 6
    for (g1, n1, o1), (g2, n2, o2), axis in zip(calls[::2], calls[1::2], grid, strict=True):
        assert g1 == {"model.name": ["trcsl_1d"], f"model.overrides.{axis}": grid[axis]}
        assert g2 == {"model.name": ["trcsl"], f"model.overrides.{axis}": plan.fig9_2d["values"][axis]}
        assert "train.max_epochs=30" in o1 and f"train.max_epochs={plan.fig9_2d['epochs']}" in o2
        assert n1 is None and n2 is None


@pytest.mark.slow  # six real sweep trials and a second pass: ~1.5 min on 2 shared cores
def test_tiny_budget_run_trains_what_the_plan_says_and_reports_it(fake_probe, train_data, stainless_data,
                                                                  mlflow_tmp, tmp_path, capsys):
    rep = tmp_path / "rep"
    argv = ["reproduce", "--quick", "--only", "fig9", "--budget", "0.01", "--out", str(rep), "--quiet"]
    for item in _tiny(train_data, stainless_data):
        argv += ["--set", item]
    assert main(argv) == 0, capsys.readouterr().err
    plan = plan_file.load_plan(rep / "plan.yaml")
    assert plan.fig9_2d["epochs"] == 2 and plan.over_budget  # sweep_epochs 6 -> the last floor
    for stem, axis in plan_mod.FIG9_AXES.items():
        for model, epochs, allowed in (("trcsl_1d", 6, plan_mod.fig9_grid()[axis]),
                                       ("trcsl", 2, plan.fig9_2d["values"][axis])):
            with open(rep / "sweeps" / f"{stem}-{model}" / "trials.csv") as f:
                rows = list(csv.DictReader(f))
            assert len(rows) == 1 and rows[0]["state"] == "COMPLETE"  # sweep_trials=1
            assert int(rows[0]["epochs"]) == epochs and rows[0]["model.name"] == model
            assert int(rows[0][f"model.overrides.{axis}"]) in allowed
    text = (rep / "report.md").read_text()
    assert "## Plan" in text and "Fig. 9 2D trials: 6 -> 2 epochs" in text
    assert "over budget" in text and "2.2000 s per step" in text
    # the same plan file runs again without timing anything, reusing every finished study
    fake_probe.clear()
    assert main(["reproduce", "--plan-file", str(rep / "plan.yaml"), "--out", str(rep), "--quiet"]) == 0
    assert not fake_probe


def test_fixed_costs_scale_with_the_1d_probe_never_below_the_reference():
    ref = plan_cost.REFERENCE_1D_STEP_S
    assert plan_cost.overhead_scale({"trcsl_1d": ref}) == 1.0
    assert plan_cost.overhead_scale({"trcsl_1d": ref / 3}) == 1.0  # a faster probe keeps the margin
    assert plan_cost.overhead_scale({"trcsl": 0.2}) == 1.0
    runs = []
    for step in (ref, 2 * ref):
        est = plan_cost.Estimate({"trcsl_1d": step})
        est.train("trcsl_1d", 150, 14, n=10)
        runs.append(est.seconds - plan_cost.FIGURE_OVERHEAD_S)
    # step time and every fixed cost of a run double together
    assert runs[1] == pytest.approx(2 * runs[0])
