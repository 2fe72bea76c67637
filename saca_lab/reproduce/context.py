"""Shared state of one reproduction: mode, output folder, datasets, cached runs, report rows.

Training runs are reused: each run is tagged with a key (:func:`reuse_key`) that hashes its
resolved configuration, the ``saca_lab`` source files, the dataset's checksums and the
simulator's generator version, and a later reproduction that needs the same key reads the
finished run back from MLflow instead of training again (``reuse=False`` trains anew). Any edit
of the code, committed or not, or a regenerated dataset, so trains anew.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from saca_lab import tracking
from saca_lab.config import Override, load_config, project_dir
from saca_lab.reproduce.settings import Mode
from saca_lab.training.provenance import PACKAGE_DIR, dataset_checksum, source_hash
from saca_lab.training.result import RunResult

EXPERIMENTS = project_dir("experiments")
SWEEPS = project_dir("sweeps")


#: Keys whose string values :func:`override_text` writes as JSON (quoted), as the reproduction
#: always spelled them: a dataset spec is a mapping or a path.
_JSON_TEXT_KEYS = frozenset({"data.dataset"})


def override_text(item: Override) -> str:
    """The ``KEY=VALUE`` text of an override for what identifies a run or a study (run-lock
    names, sweep study names) and for log lines: ``--set`` text as it is, a ``(key, value)``
    pair as the reproduction always wrote it: a string value bare (``model.name=trcsl``),
    any other value, and :data:`_JSON_TEXT_KEYS`' strings, as JSON (``data.shots=30``,
    ``tracking.log_model=false``, ``data.dataset={"preset": "slag"}``). Configs take the pairs
    themselves (:func:`saca_lab.config.apply_overrides`); this text only names them, and must
    not change: a sweep study is found again by it."""
    if isinstance(item, str):
        return item
    key, value = item
    return f"{key}={value if isinstance(value, str) and key not in _JSON_TEXT_KEYS else json.dumps(value)}"


def reuse_key(cfg: dict, runtime=None) -> str:
    """What decides a training run's result: the resolved config (and the precision it
    resolves to here), the code, the data and the simulator that generated it."""
    from saca_lab.spectra import simulate

    # PACKAGE_DIR read here, at call time: tests point it at a scratch package
    content = {"config": cfg, "runtime": runtime, "code": source_hash(PACKAGE_DIR),
               "dataset": dataset_checksum(cfg["data"]["dataset"]),
               "generator_version": simulate.GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Row:
    """One line of the paper-vs-ours table."""

    figure: str
    quantity: str
    paper: str
    ours: str
    verdict: str  # "agrees", "differs", "partly" or "n/a"
    note: str = ""


@dataclass
class FigureResult:
    name: str
    title: str
    images: list[Path] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    run_id: str | None = None
    text: str = ""


def fmt(x: float, digits: int = 3) -> str:
    return "nan" if x != x else f"{x:.{digits}f}"


class Context:
    """What every figure function gets: settings and helpers shared across figures."""

    def __init__(self, mode: Mode, out_dir: Path, *, data_root: str | None = None,
                 reuse: bool = True, progress: bool = True) -> None:
        self.mode = mode
        self.out_dir = Path(out_dir)
        self.data_root = data_root
        self.reuse = reuse
        self.progress = progress
        self.started = time.perf_counter()
        self.parent_run_id: str | None = None  # the current figure's MLflow run
        self.plan = None  # the budget plan (reproduce/plan.py) that sized Fig. 9's 2D trials, if any

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{time.perf_counter() - self.started:6.0f} s] {message}", flush=True)

    def dataset(self, which: str):
        from saca_lab.datasets.resolve import resolve_dataset

        spec = getattr(self.mode, which)
        return resolve_dataset(dict(spec) if isinstance(spec, dict) else str(spec), self.data_root)

    def config(self, experiment: str, overrides: list[Override]) -> dict:
        return load_config(EXPERIMENTS / f"{experiment}.yaml", overrides)

    def train(self, experiment: str, overrides: list[Override], *, figure: str) -> RunResult:
        """Run (or reuse) ``experiments/EXPERIMENT.yaml`` with overrides, under the figure's run.

        "Is there a finished run? else train it" holds a lock named by the experiment and its
        overrides (:func:`saca_lab.tracking.run_lock`): a second reproduction that needs the
        same run at the same time waits for it, then reuses it instead of training it again.
        """
        text = [override_text(o) for o in overrides]
        name = hashlib.sha256(json.dumps([experiment, text]).encode()).hexdigest()[:16]
        with tracking.run_lock(name, f"another process is training {experiment} {' '.join(text)}"):
            return self._train(experiment, overrides, figure=figure)

    def _train(self, experiment: str, overrides: list[Override], *, figure: str) -> RunResult:
        from saca_lab.training.run import run_experiment

        # One experiment for every training run, so figures share runs (Fig. 11 reuses Fig. 12's
        # TrCSL pairs); the figure's own experiment holds its plots and table.
        cfg = self.config(experiment, [*overrides, ("tracking.experiment", "reproduce-training")])
        # with the precision and memory format "auto" resolves to here: a run trained in bf16
        # elsewhere is not reused on a machine that trains in fp32
        from saca_lab.models import model_info
        from saca_lab.runtime import resolve_training

        runtime = resolve_training(cfg["train"], model_info(cfg["model"]["name"]).input_kind)
        key = reuse_key(cfg, runtime)
        if self.reuse and (found := self._finished_run(cfg["tracking"]["experiment"], key)):
            self.log(f"{figure}: reusing run {found.run_id[:8]} ({cfg['name']})")
            return found
        from saca_lab.training.resume import resumable_run

        # an unfinished run of the same key (its process died) continues from its checkpoint
        resume = (resumable_run(cfg["tracking"]["experiment"], f"tags.reproduce_key = '{key}'")
                  if self.reuse else None)
        if resume:
            self.log(f"{figure}: resuming run {resume[:8]} ({cfg['name']}) from its last checkpoint")
        else:
            self.log(f"{figure}: training {cfg['name']} ({' '.join(map(override_text, overrides))})")
        return run_experiment(cfg, progress=False, resume=resume,
                              tags={"reproduce_key": key, "reproduce_mode": self.mode.name,
                                    "reproduce_figure": figure,
                                    "reproduce_figure_run": self.parent_run_id or ""})

    def _finished_run(self, experiment: str, key: str) -> RunResult | None:
        """The newest finished run tagged with reuse ``key``, as a :class:`RunResult` with its
        logged metrics (no checkpoint or predictions on this machine), or None."""
        client = tracking.client()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        runs = client.search_runs([exp.experiment_id],
                                  f"tags.reproduce_key = '{key}' and attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            return None
        run = runs[0]
        metrics = run.data.metrics
        targets = [k[len("test_sample_rmse_"):] for k in metrics
                   if k.startswith("test_sample_rmse_") and not k.endswith("_mean")]
        return RunResult(run_id=run.info.run_id, reused=True, targets=targets,
                         test_sample={k: v for k, v in metrics.items() if k.startswith("test_sample_")},
                         test={k: v for k, v in metrics.items() if k.startswith("test_")})
