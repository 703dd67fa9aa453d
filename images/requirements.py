"""Print the requirements of one extra of the project (resolving self-references), so an
image can install its dependencies in a cached layer before the source is copied in.

Usage: python requirements.py base|<extra> [pyproject.toml]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SELF = re.compile(r"^kfp-mlops\[(?P<extras>[^\]]+)\]$")


def requirements(project: dict, extra: str) -> list[str]:
    deps = project["project"]
    if extra == "base":
        return list(deps["dependencies"])
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
