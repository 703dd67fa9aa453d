"""Print the requirements of one extra of the project (resolving self-references), so an
image can install its dependencies in a cached layer before the source is copied in.

Usage: python requirements.py base|runtime|kfp|<extra> [pyproject.toml]

- ``base``: the project's own dependencies (the kfp SDK, with kfp-kubernetes).
- ``runtime``: what a task needs of them, without the SDK: kfp runs a task with
  ``_KFP_RUNTIME=true``, which imports nothing beyond kfp itself, so the images install
  ``kfp`` (printed by ``kfp``) with ``--no-deps``, the way KFP's own task launcher does.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SELF = re.compile(r"^kfp-mlops\[(?P<extras>[^\]]+)\]$")
# The SDK half of the base dependencies: compile, submit, Kubernetes platform config.
SDK = ("kfp", "kfp-kubernetes")
NAME = re.compile(r"^[A-Za-z0-9._-]+")


def name_of(req: str) -> str:
    m = NAME.match(req.strip())
    return m.group(0).lower().replace("_", "-") if m else req


def requirements(project: dict, extra: str) -> list[str]:
    deps = project["project"]
    if extra == "base":
        return list(deps["dependencies"])
    if extra == "runtime":
        return [r for r in deps["dependencies"] if name_of(r) not in SDK]
    if extra == "kfp":
        return [r for r in deps["dependencies"] if name_of(r) == "kfp"]
    out: list[str] = []
    for req in deps["optional-dependencies"][extra]:
        m = SELF.match(req.replace(" ", ""))
        if m:
            for inner in m.group("extras").split(","):
                out += [r for r in requirements(project, inner) if r not in out]
        elif req not in out:
            out.append(req)
    return out


if __name__ == "__main__":
    path = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("pyproject.toml")
    print("\n".join(requirements(tomllib.loads(path.read_text()), sys.argv[1])))
