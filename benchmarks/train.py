"""Training benchmark: wall time and peak RSS of `tagifai.train` on the real data and on
sample sizes. Usage: python benchmarks/train.py [--source DIR] [--rows 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "madewithml"


def one(source: str, rows: int, epochs: int | None) -> dict:
    """Train once in this process; returns the figures."""
    import pandas as pd

    from tagifai import data, evaluate, sample, train
    from tagifai.config import TrainParams

    t0 = time.perf_counter()
    if rows:
        projects, tags = sample.generate_sample(rows)
    else:
        projects = pd.read_csv(Path(source) / "projects.csv")
        tags = pd.read_csv(Path(source) / "tags.csv")
    df = data.prepare(projects.merge(tags, on="id"))
    tr, va, te = data.split(df)
    t1 = time.perf_counter()
    params = TrainParams() if epochs is None else TrainParams(num_epochs=epochs)
    model = train.train(tr, va, params)
    t2 = time.perf_counter()
    m = evaluate.evaluate_model(model, te)
    argmax = evaluate.evaluate_model(model, te, fallback=False)
    return {
        "source": f"sample:{rows}" if rows else str(source),
        "rows": len(df),
        "epochs": params.num_epochs,
        "prepare_s": round(t1 - t0, 2),
        "train_s": round(t2 - t1, 2),
        "test_f1": round(m["overall"]["f1"], 4),
        "test_f1_argmax": round(argmax["overall"]["f1"], 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", default=str(DEFAULT_SOURCE))
    ap.add_argument("--rows", type=int, nargs="*", default=[], help="sample sizes to train on as well")
    ap.add_argument("--epochs", type=int, default=None, help="override epochs for the sample sizes")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rows-one", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.source, args.rows_one, args.epochs)))
        return
    # Each measurement in a fresh process so peak RSS is that run's own.
    runs = [(0, None)] + [(r, args.epochs) for r in args.rows]
    for rows, epochs in runs:
        cmd = [sys.executable, __file__, "--one", "--source", args.source, "--rows-one", str(rows)]
        if epochs is not None:
            cmd += ["--epochs", str(epochs)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        res = json.loads(out)
        print(
            f"train  {res['source'][-40:]:>40}  rows={res['rows']:>9,}  epochs={res['epochs']:>3}  "
            f"train={res['train_s']:>7.2f}s  prepare={res['prepare_s']:>6.2f}s  "
            f"test_f1={res['test_f1']:.4f} (argmax {res['test_f1_argmax']:.4f})  peak_rss={res['peak_rss_mb']:,.0f} MB"
        )


if __name__ == "__main__":
    main()
