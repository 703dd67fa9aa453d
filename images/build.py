"""Build (and optionally push or load into kind) every step image; print size and build time.

    python images/build.py [--no-cache] [--push] [--kind CLUSTER] [--only IMAGE ...]

Every image is the template ``images/Dockerfile`` built with the build arguments of its
declaration in ``components/images.py`` (its extra, SDK or task runtime, data projects).
Images build in a fixed order: the first one builds the layers every image shares (the
base dependencies and kfp), the rest reuse them from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.images import IMAGE_SPECS, image, package_version  # noqa: E402

TEMPLATE = ROOT / "images" / "Dockerfile"


def build(step: str, no_cache: bool, base_image: str | None) -> dict:
    ref = image(step)
    cmd = ["docker", "build", "-f", str(TEMPLATE), "-t", ref]
    for key, value in IMAGE_SPECS[step].build_args(package_version()).items():
        cmd += ["--build-arg", f"{key}={value}"]
    if base_image:
        cmd += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if no_cache:
        cmd.append("--no-cache")
    t0 = time.perf_counter()
    print(f"[images] building {ref}", flush=True)
    log = ROOT / "build" / "images" / f"{step}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        proc = subprocess.run([*cmd, str(ROOT)], stdout=f, stderr=subprocess.STDOUT, env={**os.environ})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        raise SystemExit(f"[images] build of {ref} failed (log {log}):\n" + "\n".join(tail))
    size = int(subprocess.check_output(["docker", "image", "inspect", ref, "--format", "{{.Size}}"]).strip())
    backtracking = "backtrack" in log.read_text().lower()
    return {
        "step": step,
        "image": ref,
        "seconds": round(seconds, 1),
        "size_mb": round(size / 1e6),
        "log": str(log),
        "resolver_backtracking": backtracking,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-cache", action="store_true", help="build every layer from scratch")
    ap.add_argument("--push", action="store_true", help="push each image after building it")
    ap.add_argument("--kind", metavar="CLUSTER", help="load each image into this kind cluster")
    ap.add_argument("--only", nargs="*", choices=list(IMAGE_SPECS), help="build only these images")
    ap.add_argument("--base-image", default=None, help="override BASE_IMAGE (default python:3.11-slim)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    args = ap.parse_args()

    results = []
    for step in args.only or IMAGE_SPECS:
        res = build(step, args.no_cache and not results, args.base_image)  # later builds reuse shared layers
        results.append(res)
        if args.push:
            subprocess.run(["docker", "push", res["image"]], check=True)
        if args.kind:
            subprocess.run(["kind", "load", "docker-image", res["image"], "--name", args.kind], check=True)

    print(f"\n{'image':<58} {'size':>8} {'goal':>6} {'build':>8}")
    missed = []
    for r in results:
        goal = IMAGE_SPECS[r["step"]].size_goal_mb
        flag = "" if r["size_mb"] <= goal else "  over goal"
        if flag:
            missed.append(r["step"])
        print(f"{r['image']:<58} {r['size_mb']:>6}MB {goal:>4}MB {r['seconds']:>7.1f}s{flag}")
        if r["resolver_backtracking"]:
            print(f"  warning: pip backtracked while resolving {r['step']} (see {r['log']})")
    print(
        f"total build time {sum(r['seconds'] for r in results):.1f}s; over the size goal: {', '.join(missed) or 'none'}"
    )
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
