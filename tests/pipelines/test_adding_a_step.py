"""docs/adding-a-step.md, followed to the letter in a copy of the repository: the step's folder
(its code blocks, written where their first line says) and the one pipeline edit are all it
takes for the new step to be declared, wired, compiled, checked and run locally."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "adding-a-step.md"
pytestmark = pytest.mark.slow


def _blocks() -> list[tuple[str, str]]:
    """(the file its first line names, the code) of every python block of the guide."""
    found = []
    for code in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S):
        first, _, rest = code.partition("\n")
        found.append((first.lstrip("# ").strip(), rest))
    return found


@pytest.fixture(scope="module")
def copy_with_a_new_step(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo") / "kfp-mlops"
    tracked = subprocess.check_output(["git", "ls-files"], cwd=ROOT, text=True).split()
    for rel in tracked:
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    folder = repo / "components" / "announce"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "README.md").write_text("# announce\n\nSays what was published.\n")
    edits = 0
    for target, code in _blocks():
        if target.startswith("components/"):
            (repo / target).write_text(code)
        elif target.startswith("pipelines/dataops.py"):
            imports = [ln for ln in code.splitlines() if ln.startswith("from ")]
            body = [ln for ln in code.splitlines() if ln and not ln.startswith("from ")]
            path = repo / "pipelines" / "dataops.py"
            text = path.read_text()
            anchor = '    wire(published).set_display_name("publish labeled_projects")\n'
            assert anchor in text, "the guide's pipeline edit has no place in pipelines/dataops.py"
            text = text.replace(anchor, anchor + "\n".join(body) + "\n")
            text = text.replace(
                "from kfp import dsl\n", "from kfp import dsl\n\n" + "\n".join(imports) + "\n", 1
            )
            path.write_text(text)
            edits += 1
    assert edits == 1 and (folder / "component.py").exists() and (folder / "core.py").exists()
    return repo


def _cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAREHOUSE_URI", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(repo)  # the copy, before the installed checkout
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_new_step_is_declared_wired_and_compiled_from_the_guide_alone(copy_with_a_new_step: Path) -> None:
    repo = copy_with_a_new_step
    probe = _cli(repo, "check")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    compiled = _cli(repo, "compile", "dataops", "--out", str(repo / "build"))
    assert compiled.returncode == 0, compiled.stderr
    text = (repo / "build" / "dataops.yaml").read_text()
    assert "exec-announce" in text and "kfp-mlops-extract:" in text
    # Its declared need reached the cluster wiring: the stores volume on its executor.
    platform = text.split("platforms:", 1)[1]
    assert re.search(r"exec-announce:\n\s+pvcMount:", platform)


def test_the_new_step_runs_in_the_pipeline(copy_with_a_new_step: Path, tmp_path: Path) -> None:
    run = _cli(
        copy_with_a_new_step,
        "run",
        "dataops",
        "--local",
        "--source",
        "sample:300",
        "--stores",
        str(tmp_path),
        "--json",
    )
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, summary.get("error")
    tasks = {t["name"]: t["status"] for t in summary["tasks"]}
    assert tasks["announce"] == "SUCCEEDED"
    log = Path(summary["pipelines"][0]["log_file"]).read_text()
    assert "300 rows are published in mlops_course.labeled_projects" in log
