"""Run a sweep: one Optuna study, any number of worker processes, every trial an MLflow run.

Each worker loops: take the study's budget lock, fail trials whose worker stopped beating
(their retry is queued), and if a queued retry or an unstarted trial is left, claim it and
release the lock; train it with :func:`~saca_lab.training.run.run_experiment`, pruned through
``optuna_integration.PyTorchLightningPruningCallback``. A trial that raises is marked FAIL and
the loop goes on. When the budget is spent but other trials still run, the worker waits: one of
them may belong to a dead worker and come back as a retry.

MLflow: one parent run per study (its id is a study user attribute, so every worker on every
machine nests under it), one child run per trial, tagged ``optuna.state``; pruned trials are
tagged ``pruned`` and ended KILLED, not left FAILED; a dead worker's run is ended KILLED and
tagged with the trial that retried it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import yaml

from saca_lab import tracking
from saca_lab.config import check_overrides, parse_override
from saca_lab.errors import InputError
from saca_lab.sweeps.spec import SweepSpec, check_configs, load_sweep, short_name
from saca_lab.sweeps.storage import (
    DEFAULT_STORAGE,
    BudgetLock,
    check_url,
    init_tracking,
    open_storage,
    redact,
    retry_callback,
    worker_id,
)

#: Seconds a worker waits for the study's creator to finish setting it up.
SETUP_WAIT = 60


def make_sampler(spec: SweepSpec):
    import optuna

    opts = {k: v for k, v in spec.sampler.items() if k != "name"}
    if spec.sampler["name"] == "grid":
        return optuna.samplers.GridSampler(spec.grid, **opts)
    if spec.sampler["name"] == "random":
        return optuna.samplers.RandomSampler(**opts)
    # constant_liar: parallel workers see each other's running trials as bad, not absent
    opts.setdefault("constant_liar", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(**opts)


def make_pruner(spec: SweepSpec):
    import optuna

    opts = {k: v for k, v in spec.pruner.items() if k != "name"}
    return {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
            "none": optuna.pruners.NopPruner}[spec.pruner["name"]](**opts)


def root_number(trial) -> int:
    """The number of the trial a retry repeats (its own number otherwise)."""
    return trial.system_attrs.get("failed_trial", trial.number)


class TrialRecorder(pl.Callback):
    """Stores the MLflow run id on the trial as soon as the run exists, logs the searched
    values as ``sweep.*`` params (pruned runs never reach the full config logging), and keeps
    the last validation metrics, the epoch count and each epoch's wall time (training and
    validation)."""

    def __init__(self, trial, params: dict) -> None:
        self.trial, self.params = trial, params
        self.last: dict[str, float] = {}
        self.epochs = 0
        self.durations: list[float] = []
        self._t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_fit_start(self, trainer, pl_module) -> None:
        logger = trainer.logger
        self.trial.set_user_attr("mlflow_run_id", logger.run_id)
        tracking.log_params(logger.run_id, {f"sweep.{k}": v for k, v in self.params.items()},
                            logger.experiment)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self.epochs += 1
        self.durations.append(time.perf_counter() - self._t0)
        self.last = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}


def pruning_callback(trial, monitor: str):
    """``optuna_integration.PyTorchLightningPruningCallback`` that reports the last epoch but
    never prunes on it: the compute is spent by then, and a pruned trial loses its test metrics."""
    from optuna_integration import PyTorchLightningPruningCallback

    class LastEpochKept(PyTorchLightningPruningCallback):
        def on_validation_end(self, trainer, pl_module) -> None:
            last = trainer.max_epochs is not None and pl_module.current_epoch + 1 >= trainer.max_epochs
            score = trainer.callback_metrics.get(self.monitor)
            if last and not trainer.sanity_checking and score is not None:
                self._trial.report(score.item(), step=pl_module.current_epoch)
                return
            super().on_validation_end(trainer, pl_module)

    return LastEpochKept(trial, monitor=monitor)


class Worker:
    """One process's share of a study (see the module docstring)."""

    def __init__(self, study, spec: SweepSpec, overrides: Sequence[str], url: str,
                 lock: BudgetLock, budget: int, progress: bool = True) -> None:
        self.study, self.spec, self.overrides, self.url = study, spec, list(overrides), url
        self.lock, self.budget, self.progress = lock, budget, progress
        attrs = study.user_attrs
        self.parent, self.experiment = attrs["mlflow_parent_run_id"], attrs["mlflow_experiment"]
        self.client = tracking.client()
        self.ran = 0

    def _say(self, text: str) -> None:
        if self.progress:
            print(f"[{self.study.study_name}] {text}", flush=True)

    def run(self, timeout: float | None = None) -> int:
        """Run trials until the budget is spent and no trial is left running; return how many
        this worker ran."""
        import optuna

        deadline = time.monotonic() + timeout if timeout else None
        announced = False
        while deadline is None or time.monotonic() < deadline:
            with self.lock:
                optuna.storages.fail_stale_trials(self.study)
                trials = self.study.get_trials(deepcopy=False)
                waiting = sum(t.state == optuna.trial.TrialState.WAITING for t in trials)
                running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
                left = waiting or len({root_number(t) for t in trials}) < self.budget
                if left:
                    # the objective releases the lock once ask() has claimed the trial
                    self.study.optimize(self._objective, n_trials=1, catch=(Exception,),
                                        callbacks=[self._report_trial])
                    continue
            if not running:
                break
            if not announced:
                self._say(f"budget of {self.budget} trials started; waiting for {running} running "
                          f"trial(s) (a dead worker's trial is retried after "
                          f"{self.spec.heartbeat['grace']} s without heartbeat)")
                announced = True
            time.sleep(self.spec.heartbeat["interval"])
        self._close_parent()
        return self.ran

    def _objective(self, trial) -> float:
        import optuna

        from saca_lab.training.run import run_experiment

        self.lock.release()
        self.ran += 1
        params = {path: p.suggest(trial) for path, p in self.spec.space.items()}
        trial.set_user_attr("worker", worker_id())
        self._end_dead_run(trial)
        cfg = self.spec.trial_config(params, [
            *self.overrides, ("tracking.experiment", self.experiment),
            ("tracking.run_name", f"{self.study.study_name}-{trial.number:04d}")])
        recorder = TrialRecorder(trial, params)
        callbacks = [recorder, pruning_callback(trial, self.spec.metric)]
        tags = {"optuna.study": self.study.study_name, "optuna.trial": str(trial.number),
                "optuna.storage": redact(self.url), "sweep": self.spec.name}
        start = time.perf_counter()
        try:
            result = run_experiment(cfg, progress=False, callbacks=callbacks,
                                    parent_run_id=self.parent, tags=tags)
        except optuna.TrialPruned as exc:
            self._end_run(trial, getattr(exc, "run_id", None), "PRUNED", recorder, start)
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            self._end_run(trial, getattr(exc, "run_id", None), "INTERRUPTED", recorder, start)
            self._queue_retry(trial)
            # Lightning turns Ctrl-C into SystemExit, which Optuna would leave RUNNING (and a
            # later worker would retry it a second time); a KeyboardInterrupt it marks FAIL.
            raise KeyboardInterrupt from None
        except Exception as exc:
            self._end_run(trial, getattr(exc, "run_id", None), "FAIL", recorder, start, exc)
            raise
        value = recorder.last.get(self.spec.metric, math.nan)
        trial.set_user_attr("metrics", {**recorder.last, **result.test, **result.test_sample})
        if not math.isfinite(value):
            error = RuntimeError(f"{self.spec.metric} was {value} after the last epoch")
            self._end_run(trial, result.run_id, "FAIL", recorder, start, error)
            raise error
        self._end_run(trial, result.run_id, "COMPLETE", recorder, start)
        return value

    def _end_run(self, trial, run_id, state, recorder, start, error=None) -> None:
        trial.set_user_attr("epochs", recorder.epochs)
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        if recorder.durations:
            trial.set_user_attr("epoch_seconds", round(statistics.median(recorder.durations), 4))
        if error is not None:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:2000])
        if not run_id:
            return
        self.client.set_tag(run_id, "optuna.state", "FAIL" if state == "INTERRUPTED" else state)
        if state == "PRUNED":
            self.client.set_tag(run_id, "pruned", "true")
            self.client.set_tag(run_id, "pruned_at_epoch", str(recorder.epochs - 1))
            self.client.set_terminated(run_id, "KILLED")  # stopped on purpose, not an error
        elif state == "INTERRUPTED":
            self.client.set_tag(run_id, "interrupted", "true")
            self.client.set_terminated(run_id, "KILLED")
        elif error is not None:
            self.client.set_tag(run_id, "error", f"{type(error).__name__}: {error}"[:5000])

    def _queue_retry(self, trial) -> None:
        """An interrupted trial is queued again, as a dead worker's would be: the next run of
        the sweep repeats it instead of counting it as done."""
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        retry_callback(self.spec.heartbeat["max_retry"])(self.study, frozen)

    def _end_dead_run(self, trial) -> None:
        """A retry inherits the dead trial's user attributes, its MLflow run id among them (a
        fresh trial has none yet)."""
        dead = trial.user_attrs.get("mlflow_run_id")
        if dead:
            with contextlib.suppress(Exception):  # the run may live on an unreachable server
                self.client.set_tag(dead, "optuna.state", "FAIL")
                self.client.set_tag(dead, "retried_by_trial", str(trial.number))
                self.client.set_terminated(dead, "KILLED")

    def _report_trial(self, study, frozen) -> None:
        state = frozen.state.name
        text = f"trial {frozen.number:>3} {state:<8}"
        if frozen.value is not None:
            text += f" {self.spec.metric} {frozen.value:.4g}"
        attrs = frozen.user_attrs
        text += f"  {attrs.get('epochs', 0)} epochs {attrs.get('seconds', 0):.1f} s"
        if "failed_trial" in frozen.system_attrs:
            text += f"  (retry of trial {frozen.system_attrs['failed_trial']})"
        text += "  " + " ".join(f"{short_name(k)}={v:.4g}" if isinstance(v, float) else
                                f"{short_name(k)}={v}" for k, v in frozen.params.items())
        if state == "FAIL":
            text += f"\n    error: {attrs.get('error', 'see the log above')}"
        with contextlib.suppress(ValueError):
            best = study.best_trial
            text += f"  | best {best.value:.4g} (trial {best.number})"
        self._say(text)

    def _close_parent(self) -> None:
        import optuna

        trials = self.study.get_trials(deepcopy=False)
        active = any(t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
                     for t in trials)
        if not active and len({root_number(t) for t in trials}) >= self.budget:
            with contextlib.suppress(Exception):
                self.client.set_terminated(self.parent, "FINISHED")


def _init_study(study, spec: SweepSpec, overrides: Sequence[str], url: str, fingerprint: str) -> None:
    """Create the MLflow parent run and record what every worker must share."""
    client = tracking.client()
    exp_name = f"sweep-{study.study_name}"
    params = {"sampler": spec.sampler, "pruner": spec.pruner, "objective": spec.metric,
              "direction": spec.direction, "base": spec.base, "set": spec.set,
              "overrides": list(overrides), "space": list(spec.space)}
    parent_id = tracking.start_run(exp_name, study.study_name, params=params, mlflow_client=client, tags={
        "optuna.study": study.study_name, "optuna.storage": redact(url), "sweep": spec.name,
        "sweep_file": str(spec.path), "mlflow.note.content": spec.description})
    client.log_artifact(parent_id, str(spec.path))
    if spec.source is not None:  # with the files it extends merged in: what the study ran
        client.log_text(parent_id, yaml.safe_dump(spec.source, sort_keys=False), "sweep_resolved.yaml")
    for key, value in {"mlflow_parent_run_id": parent_id, "mlflow_experiment": exp_name,
                       "fingerprint": fingerprint, "sweep_file": str(spec.path),
                       "objective": spec.metric, "overrides": list(overrides),
                       "series": spec.report["series"], "report_metrics": spec.report["metrics"],
                       "ready": True}.items():  # "ready" last: other workers wait for it
        study.set_user_attr(key, value)


def open_study(storage, spec: SweepSpec, name: str, overrides: Sequence[str], url: str):
    """Create the study (and its MLflow parent run), or join it; refuse a different spec."""
    import optuna

    fingerprint = spec.fingerprint(overrides)
    kwargs = {"storage": storage, "sampler": make_sampler(spec), "pruner": make_pruner(spec)}
    try:
        study = optuna.create_study(study_name=name, direction=spec.direction, **kwargs)
        _init_study(study, spec, overrides, url, fingerprint)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, **kwargs)
        deadline = time.monotonic() + SETUP_WAIT
        while "ready" not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.5)
        if "ready" not in study.user_attrs:
            if study.get_trials(deepcopy=False):
                raise InputError(f"study {name!r} in {redact(url)} was not created by "
                                 f"`saca-lab sweep run`; use another --study-name") from None
            _init_study(study, spec, overrides, url, fingerprint)  # its creator died in setup
    attrs = study.user_attrs
    if attrs["fingerprint"] != fingerprint:
        raise InputError(
            f"study {name!r} in {redact(url)} was started from {attrs['sweep_file']} with "
            f"--set {attrs['overrides'] or '(none)'}; this run's sweep file or --set differ. "
            f"Use --study-name to start a new study")
    if study.direction.name.lower() != spec.direction:
        raise InputError(f"study {name!r} {study.direction.name.lower()}s; the sweep file "
                         f"{spec.direction}s {spec.metric}")
    return study


@contextlib.contextmanager
def quiet_logs():
    """Per-trial progress lines replace Lightning's and Optuna's INFO chatter."""
    import optuna

    optuna.logging.get_logger("optuna")  # configures Optuna's logger, which resets its level once
    names = ("lightning.pytorch", "lightning.fabric", "lightning", "optuna")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            from optuna.exceptions import ExperimentalWarning

            warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats, retry callback
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def run_sweep(path: str | Path, n_trials: int | None = None, storage: str | None = None,
              study_name: str | None = None, overrides: Sequence[str] = (), progress: bool = True):
    """Run (or resume, or join) a sweep; return the ``optuna.Study``.

    Parameters
    ----------
    path : path of a sweep file (see :mod:`saca_lab.sweeps.spec`).
    n_trials : the study's total budget (all workers together); default: the file's
        ``n_trials``, or the grid's size. A rerun with a larger value extends the study.
    storage : Optuna storage URL; default ``sqlite:///mlruns/optuna.db``.
    study_name : default: the sweep file's stem.
    overrides : ``KEY=VALUE`` applied to every trial's config after the file's ``set``
        (e.g. a smaller dataset and fewer epochs); part of the study's identity.
    progress : print one line per finished trial.
    """
    spec = load_sweep(path)
    overrides = list(overrides)
    for item in overrides:
        key, _ = parse_override(item)
        if key in spec.space:
            raise InputError(f"--set {item!r}: {key} is a searched parameter of {spec.path.name}")
    if overrides:
        check_overrides(overrides)  # named as --set, not as the first trial that reads them
        check_configs(spec, overrides)
    budget = n_trials if n_trials is not None else spec.budget
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise InputError(f"--n-trials: expected a positive integer, got {budget!r}")
    if spec.grid and budget > spec.budget:
        raise InputError(f"--n-trials {budget} exceeds the grid's {spec.budget} points")
    url = check_url(storage or DEFAULT_STORAGE)
    name = study_name or spec.name
    with quiet_logs():
        rdb = open_storage(url, spec.heartbeat)
        init_tracking()
        study = open_study(rdb, spec, name, overrides, url)
        worker = Worker(study, spec, overrides, url, BudgetLock(rdb, url, name), budget, progress)
        worker._say(f"{spec.sampler['name']} sampler, {spec.pruner['name']} pruner, "
                    f"{spec.direction} {spec.metric}; budget {budget} trials; storage {redact(url)}")
        ran = worker.run(spec.timeout)
        done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        worker._say(f"this worker ran {ran} trial(s); the study has {done} finished")
    return study
