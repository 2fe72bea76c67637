"""Baselines vs deep models vs number of samples: TrCSL Figs. 14 and 15, with error bars.

:func:`run_compare` (also ``saca-lab compare``) draws repeated random subsets of samples per
size, splits each 70/30 by sample and fits every model on the same samples; or runs K-fold CV
by sample (``cv=K``) on a small real dataset. See :mod:`saca_lab.compare.study`.
"""

from __future__ import annotations

__all__ = ["CompareResult", "parse_sizes", "run_compare"]


def __getattr__(name: str):
    # lazy: ``saca-lab`` imports the compare CLI on every start, the study pulls in sklearn/torch
    if name in ("CompareResult", "run_compare"):
        from saca_lab.compare import study

        return getattr(study, name)
    if name == "parse_sizes":
        from saca_lab.compare.plan import parse_sizes

        return parse_sizes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
