"""The MLflow helpers every study shares (saca_lab/tracking.py): runs, params, checkpoints."""

from __future__ import annotations

import pytest

from saca_lab import tracking
from saca_lab.errors import InputError


def test_start_run_creates_the_experiment_once_and_nests_children(mlflow_tmp):
    client = tracking.client()
    parent = tracking.start_run("study", "parent", tags={"kind": "parent"}, params={"a": 1})
    child = tracking.start_run("study", "child", parent_run_id=parent, params={"b": [1, 2]})
    assert len([e for e in client.search_experiments() if e.name == "study"]) == 1
    p, c = client.get_run(parent), client.get_run(child)
    assert p.info.experiment_id == c.info.experiment_id
    assert p.info.status == "RUNNING"  # the caller ends it
    assert p.data.tags["kind"] == "parent" and "mlflow.parentRunId" not in p.data.tags
    assert c.data.tags["mlflow.parentRunId"] == parent
    assert p.data.params == {"a": "1"} and c.data.params == {"b": "[1, 2]"}


def test_long_params_are_cut_to_the_limit(mlflow_tmp):
    run = tracking.start_run("params", "r")
    tracking.log_params(run, {"long": "x" * (tracking.PARAM_MAX_CHARS + 10), "short": "y"})
    params = tracking.client().get_run(run).data.params
    assert params["long"] == "x" * tracking.PARAM_MAX_CHARS and params["short"] == "y"


def test_resolve_checkpoint_from_a_path_a_run_and_nothing(mlflow_tmp):
    ckpt = mlflow_tmp / "model.ckpt"
    ckpt.write_bytes(b"not read here")
    assert tracking.resolve_checkpoint(ckpt) == str(ckpt)
    run = tracking.start_run("ckpt", "r")
    tracking.client().log_artifact(run, str(ckpt), artifact_path="checkpoints")
    tracking.client().set_terminated(run, "FINISHED")
    for source in (run, f"runs:/{run}", "experiment:ckpt"):
        path = tracking.resolve_checkpoint(source)
        assert open(path, "rb").read() == b"not read here", source
    # the same parsing gives the run id (predict --interval reads its scores by it)
    assert tracking.run_id_of(ckpt) is None
    assert {tracking.run_id_of(s) for s in (run, f"runs:/{run}/checkpoints", "experiment:ckpt")} == {run}
    with pytest.raises(InputError, match="neither a checkpoint file nor an MLflow run id"):
        tracking.resolve_checkpoint("no-such-run")
    with pytest.raises(InputError, match="no finished run in MLflow experiment 'empty'"):
        tracking.resolve_checkpoint("experiment:empty")
