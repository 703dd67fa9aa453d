"""Compile benchmark: a fresh process compiling every pipeline to YAML (goal < 3 s).

python benchmarks/compile.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 3.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pipelines", "compile", "--out", out],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - t0)
            files = sorted(p.name for p in Path(out).glob("*.yaml"))
    best, worst = min(times), max(times)
    print(
        f"compile {', '.join(files)} in a fresh process: best {best:.2f}s, worst {worst:.2f}s (goal < {GOAL_S}s)"
    )
    if best >= GOAL_S:
        print("GOAL MISSED: compile time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
