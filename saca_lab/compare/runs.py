"""MLflow layout of a study: one parent run, a child run per (model, size), deep fits below."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from saca_lab import tracking


class StudyRuns:
    """The parent run of a comparison study and its children, through the MLflow client.

    The client API is used instead of ``mlflow.start_run`` so nothing depends on a global
    active run: Lightning's logger opens and closes the deep fits' runs in between.
    """

    def __init__(self, experiment: str, run_name: str, params: Mapping, tags: Mapping) -> None:
        self.client = tracking.client()
        self.experiment_name = experiment
        self.parent_id = tracking.start_run(experiment, run_name, params=params, mlflow_client=self.client,
                                            tags={"git_commit": tracking.git_commit(), **tags})

    def child(self, name: str, params: Mapping, tags: Mapping | None = None) -> str:
        return tracking.start_run(self.experiment_name, name, params=params, tags=tags,
                                  parent_run_id=self.parent_id, mlflow_client=self.client)

    def finish(self, run_id: str, metrics: Mapping[str, float] | None = None,
               status: str = "FINISHED") -> None:
        for key, value in (metrics or {}).items():
            if value is not None and math.isfinite(float(value)):
                self.client.log_metric(run_id, key, float(value))
        self.client.set_terminated(run_id, status=status)

    def log_artifacts(self, paths) -> None:
        for path in paths:
            if os.path.isfile(path):
                self.client.log_artifact(self.parent_id, str(path))
