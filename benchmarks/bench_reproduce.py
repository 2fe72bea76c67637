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


def _header(text: str, field: str) -> str:
    m = re.search(rf"^- {field}: (.+)$", text, flags=re.M)
    return m.group(1) if m else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="append", default=[], metavar="DIR[=LABEL]",
                    help="folder of a finished `reproduce --quick` run to record (repeatable: one "
                         "column each, e.g. the same CPU with and without AVX-512)")
    ap.add_argument("--rss", action="append", default=[], metavar="GIB",
                    help="peak RSS of each --report run, in its order (from /usr/bin/time -v)")
    ap.add_argument("--no-md", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = ap.parse_args()
    runs = []  # (label, folder, rss)
    if args.report:
        for i, item in enumerate(args.report):
            folder, _, label = item.partition("=")
            rss = float(args.rss[i]) if i < len(args.rss) else None
            runs.append((label or Path(folder).name, Path(folder), rss))
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-reproduce-"))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "saca_lab", "reproduce", "--quick", "--quiet"], cwd=work, check=True)
        print(f"wall {time.perf_counter() - t0:.0f} s")
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        runs.append(("this run", work / "reports" / "quick", rss))
    texts = [(label, (folder / "report.md").read_text(), rss) for label, folder, rss in runs]
    lines = ["## `saca-lab reproduce --quick` (the README's main job)", "", machine(), "",
             "`saca-lab reproduce --quick` from an empty folder (datasets simulated, every model "
             "trained, every sweep and comparison run), one process on 2 idle cores, one run per "
             "column; the budget planner (`--budget`, quick default 15 min) timed a few training "
             "steps first and chose the plan shown.", ""]
    for label, text, rss in texts:
        lines += [f"- **{label}**: precision {_header(text, 'Training precision')}; "
                  f"plan {_header(text, 'Plan')}"
                  + (f"; peak RSS {rss:.2f} GiB" if rss is not None else "")]
    lines += ["", "| part | " + " | ".join(label for label, _, _ in texts) + " |",
              "|---|" + "---:|" * len(texts)]
    per = [dict(figure_seconds(text)) for _, text, _ in texts]
    titles = list(dict.fromkeys(t for p in per for t in p))
    lines += [f"| {t} | " + " | ".join(f"{p[t]:.0f}" if t in p else "-" for p in per) + " |" for t in titles]
    walls = [float(re.search(r"Wall time: [\d.]+ min \((\d+) s\)", text).group(1)) for _, text, _ in texts]
    lines += ["| **total (report wall time)** | " + " | ".join(
        f"**{w:.0f}** ({w / 60:.1f} min; goal <= {GOAL_MIN:.0f} min: {'met' if w / 60 <= GOAL_MIN else 'NOT met'})"
        for w in walls) + " |"]
    for label, text, _ in texts:
        verdicts = re.search(r"Verdicts: (.+?) of (\d+) rows", text)
        if verdicts:
            lines += ["", f"Report verdicts ({label}): {verdicts.group(1)} of {verdicts.group(2)} rows."]
    lines += ["", "The first figure of each dataset pays for its simulation (slag 100 x 20 shots, "
              "carbon steel 20 x 20, stainless 100 x 5). The full mode (`saca-lab reproduce`) follows "
              "the papers' protocols; on 2 CPU cores it takes hours (2D models, 800 epochs): "
              "`saca-lab reproduce --plan` estimates it from this machine's step times."]
    md = "\n".join(lines)
    print(md)
    if not args.no_md:
        update_section("reproduce", md)


if __name__ == "__main__":
    main()
