"""``saca-lab reproduce``: every TrCSL and SACA figure and table, with a paper-vs-ours report.

``settings`` (quick / full modes), ``paper`` (the papers' numbers), ``context`` (datasets and
cached runs), one module per family of figures (``figs_data``, ``figs_training``,
``figs_sweeps``, ``figs_compare``, ``figs_transfer``, ``saca``), ``runner`` (MLflow per figure) and ``report``.
"""
