"""Wall time of `saca-lab reproduce --quick` from scratch (goal: <= 15 min on 2 CPU cores).

Runs the README's main job in an empty temporary folder (no cached datasets, runs or studies),
reads the per-figure seconds back from its report.md, and updates BENCHMARKS.md.

    python benchmarks/bench_reproduce.py                 # runs it (~10-15 min)
    python benchmarks/bench_reproduce.py --report DIR    # record a finished run's report folder
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, update_section  # noqa: E402

GOAL_MIN = 15.0


def figure_seconds(report: str) -> list[tuple[str, float]]:
    """(title, seconds) of every figure section in report.md."""
    out = []
    for title, secs in re.findall(r"^## (.+)\n\n(\d+) s;", report, flags=re.M):
        out.append((title, float(secs)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", help="folder of a finished `reproduce --quick` run to record")
    ap.add_argument("--no-md", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = ap.parse_args()
    rss = None
    if args.report:
        folder = Path(args.report)
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-reproduce-"))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "saca_lab", "reproduce", "--quick", "--quiet"], cwd=work, check=True)
        print(f"wall {time.perf_counter() - t0:.0f} s")
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        folder = work / "reports" / "quick"
    text = (folder / "report.md").read_text()
    wall = float(re.search(r"Wall time: [\d.]+ min \((\d+) s\)", text).group(1))
    verdicts = re.search(r"Verdicts: (.+?) of (\d+) rows", text)
    rows = figure_seconds(text)
    lines = ["## `saca-lab reproduce --quick` (the README's main job)", "", machine(), "",
             "`saca-lab reproduce --quick` from an empty folder (datasets simulated, every model "
             "trained, every sweep and comparison run), one process on 2 cores.", "",
             "| part | seconds |", "|---|---:|"]
    lines += [f"| {title} | {secs:.0f} |" for title, secs in rows]
    lines += [f"| **total (report wall time)** | **{wall:.0f}** ({wall / 60:.1f} min; goal <= {GOAL_MIN:.0f} min: "
              f"{'met' if wall / 60 <= GOAL_MIN else 'NOT met'}) |"]
    if rss is not None:
        lines += ["", f"Peak RSS of the run: {rss:.2f} GiB."]
    if verdicts:
        lines += ["", f"Report verdicts: {verdicts.group(1)} of {verdicts.group(2)} rows."]
    lines += ["", "The first figure of each dataset pays for its simulation (slag 100 x 20 shots, "
              "carbon steel 20 x 20, stainless 100 x 5). The full mode (`saca-lab reproduce`) follows "
              "the papers' protocols; on 2 CPU cores it takes hours (2D models, 800 epochs)."]
    md = "\n".join(lines)
    print(md)
    if not args.no_md:
        update_section("reproduce", md)


if __name__ == "__main__":
    main()
