"""Optuna sweeps over experiment configs: TrCSL's parameter studies (Fig. 9, S3-S6) and
ablation (Fig. 12) as files that resume, prune and scale out over workers.

``load_sweep`` (:mod:`.spec`), ``run_sweep`` (:mod:`.runner`), ``sweep_report`` (:mod:`.report`);
imported lazily so that ``saca-lab --help`` does not pay for torch and Optuna.
"""

from __future__ import annotations

__all__ = ["load_sweep", "run_sweep", "sweep_report"]


def __getattr__(name: str):
    if name == "load_sweep":
        from saca_lab.sweeps.spec import load_sweep

        return load_sweep
    if name == "run_sweep":
        from saca_lab.sweeps.runner import run_sweep

        return run_sweep
    if name == "sweep_report":
        from saca_lab.sweeps.report import sweep_report

        return sweep_report
    raise AttributeError(f"module 'saca_lab.sweeps' has no attribute {name!r}")
