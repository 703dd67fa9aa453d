"""All benchmarks in one command (`make bench`); each prints its own figures.

    python benchmarks/run.py [--quick] [--docker]

- train.py      tagifai training on the real data, and on 100k / 1M sample rows
- embeddings.py TF-IDF vs. TF-IDF + sentence embeddings, chosen on validation: test F1 on the
                fixed split and over 20 seeds; train / predict time per 1k rows, peak memory
- dataops.py    the DataOps pipeline on 100k and 1M sample rows (10M with --with-10m there)
- pipelines.py  `run all` on the real data: per-task seconds and orchestration overhead
                (also under DockerRunner with --docker)
- images/build.py prints each image's size and build time (`make images`)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes only")
    ap.add_argument("--docker", action="store_true", help="also run the pipelines under DockerRunner")
    args = ap.parse_args()
    rows = ["100000"] if args.quick else ["100000", "1000000"]
    steps = [
        # 10 epochs at scale: the per-row cost is what matters there (100 on the real data).
        [sys.executable, str(HERE / "train.py"), "--rows", *rows, "--epochs", "10"],
        [sys.executable, str(HERE / "embeddings.py"), *(["--quick"] if args.quick else [])],
        [sys.executable, str(HERE / "dataops.py"), "--rows", *rows],
        [sys.executable, str(HERE / "pipelines.py")],
        [sys.executable, str(HERE / "compile.py")],
    ]
    if args.docker:
        steps.append([sys.executable, str(HERE / "pipelines.py"), "--docker"])
    failed = 0
    for cmd in steps:
        print(f"\n=== {' '.join(Path(c).name if c.endswith('.py') else c for c in cmd[1:])}", flush=True)
        failed += subprocess.run(cmd).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
