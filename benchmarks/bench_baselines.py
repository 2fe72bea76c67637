"""Fit time of the chemometric baselines per sample count, and wall time of the Fig. 14 study.

Features are those of ``saca-lab compare`` on the full ``slag`` preset (100 samples x 300 shots
averaged per sample, airPLS, min-max, 16,375 points; cached next to the dataset) from
``$SACA_LAB_DATA`` (default ``/tmp/fig8data``; the preset must exist there, ``saca-lab simulate
--preset slag --data-root /tmp/fig8data`` makes it). Target Mn.

1. For each size 10..100 the first 70 % of a random subset (``size_split_spec``, repeat 0) are
   the training samples; each baseline with its default parameters is fitted on them with one
   BLAS thread (as in the study's workers), median of ``--repeat`` fits after one warm-up. PLSR
   at 70 samples is also timed with OpenBLAS's default thread count.
2. The default Fig. 14 study, ``run_compare("slag", "Mn", "plsr,pso_svr", sizes="10:100:10",
   repeats=5)``, is timed end to end (features cached, MLflow in a temporary store) with
   ``n_jobs=1`` and ``n_jobs=2``.

Usage: ``python benchmarks/bench_baselines.py [--repeat 1] [--sizes 10:100:10] [--no-md]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, median_time, update_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--sizes", default="10:100:10")
    ap.add_argument("--element", default="Mn")
    ap.add_argument("--no-md", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()
    os.environ.setdefault("SACA_LAB_DATA", "/tmp/fig8data")
    from threadpoolctl import threadpool_limits

    from saca_lab.baselines import list_baselines, make_baseline
    from saca_lab.compare import parse_sizes, run_compare
    from saca_lab.compare.fitting import baseline_features
    from saca_lab.compare.plan import size_split_spec
    from saca_lab.compare.study import build_plan
    from saca_lab.datasets.splits import make_split

    sizes = parse_sizes(args.sizes)
    plan, _ = build_plan("slag", args.element, "plsr", sizes=sizes, repeats=1)
    start = time.perf_counter()
    X, y = baseline_features(plan)
    X = X.astype(np.float64)
    feature_s = time.perf_counter() - start
    n = X.shape[0]

    per_size = {}
    for size in sizes:
        split = make_split(n, size_split_spec(size, 0, 0))
        xt, yt = X[split.train], y[split.train]
        for name in list_baselines():
            with threadpool_limits(1), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = median_time(lambda name=name, xt=xt, yt=yt: make_baseline(name).fit(xt, yt),
                                args.repeat)
            per_size[(size, name)] = t
            print(f"size {size:3d} ({len(split.train)} train)  {name:8s} {t:7.3f} s", flush=True)
    split = make_split(n, size_split_spec(min(100, n), 0, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pls_default = median_time(lambda: make_baseline("plsr").fit(X[split.train], y[split.train]),
                                  args.repeat)
        with threadpool_limits(1):
            pls_one = median_time(lambda: make_baseline("plsr").fit(X[split.train], y[split.train]),
                                  args.repeat)
    print(f"plsr at {len(split.train)} training samples: default BLAS threads {pls_default:.3f} s, "
          f"1 thread {pls_one:.3f} s", flush=True)

    study, load = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        for jobs in (1, 2):
            start = time.perf_counter()
            res = run_compare("slag", args.element, "plsr,pso_svr", sizes=args.sizes, repeats=5,
                              out_dir=Path(tmp) / f"jobs{jobs}", n_jobs=jobs, progress=False)
            study[jobs] = time.perf_counter() - start
            load[jobs] = os.getloadavg()[1]  # 5-minute load: other work on the machine
            fit_total = sum(r["fit_seconds"] for r in res.fits)
            print(f"Fig. 14 study, --jobs {jobs}: {study[jobs]:.1f} s wall "
                  f"({len(res.fits)} fits, {fit_total:.1f} s inside fit())", flush=True)

    header = "| samples (train) | " + " | ".join(f"`{b}` s" for b in list_baselines()) + " |"
    lines = [header, "|---|" + "---:|" * len(list_baselines())]
    for size in sizes:
        n_train = len(make_split(n, size_split_spec(size, 0, 0)).train)
        cells = " | ".join(f"{per_size[(size, b)]:.3f}" for b in list_baselines())
        lines.append(f"| {size} ({n_train}) | {cells} |")
    body = f"""## Baselines and the sample-count study (`saca-lab compare`)

{machine()}

Measured with `python benchmarks/bench_baselines.py --repeat {args.repeat}`: slag preset, target
{args.element}, features = shot-averaged spectra after airPLS and min-max (16,375 points;
extracting and caching them took {feature_s:.1f} s here, read from the cache afterwards). Fit
time of each baseline with its default settings (`plsr`: up to 15 components by 5-fold CV;
`pso_svr`: 12 particles x 15 iterations, 5-fold CV fitness; `pca_pls`: 10 PCs, up to 10 PLS
components), one BLAS thread, median of {args.repeat} after a warm-up.

{chr(10).join(lines)}

`plsr` on {len(split.train)} training samples: {pls_default:.3f} s with OpenBLAS's default threads vs
{pls_one:.3f} s with one ({pls_default / pls_one:.1f}x); the study's workers therefore run with
one BLAS thread each.

Default Fig. 14 study, `saca-lab compare --dataset slag --element {args.element} --models
plsr,pso_svr --sizes {args.sizes} --repeats 5` (100 fits), end to end with MLflow logging and figures:

| `--jobs` | wall s | 5-min load average after the run |
|---:|---:|---:|
| 1 | {study[1]:.1f} | {load[1]:.1f} |
| 2 | {study[2]:.1f} | {load[2]:.1f} |

Speed-up with 2 workers: {study[1] / study[2]:.2f}x. A load average above 2 on 2 cores means
other jobs shared the machine during the run, which eats into the second worker's gain.
"""
    print(body)
    if not args.no_md:
        update_section("baselines", body)


if __name__ == "__main__":
    main()
