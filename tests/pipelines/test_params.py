"""Every parameter of every pipeline is checked before the first task (pipelines/params.py),
and a local run holds its stores folder: a second run waits or stops, naming the first."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines import params, registry
from pipelines.__main__ import main as pipelines_main

ROOT = Path(__file__).resolve().parents[2]

# (pipeline, parameter, bad value, what the message must say)
BAD = [
    ("dataops", "mode", "cloud", "must be 'embedded' or 'server'"),
    ("dataops", "warehouse", "postgres://x", "unknown warehouse scheme"),
    ("dataops", "audit_schema", "mlops_course", "must not be the published schema"),
    ("dataops", "audit_schema", "Mlops_Course", "must not be the published schema"),
    ("dataops", "audit_schema", "x; drop table y", "must be a schema name"),
    ("dataops", "airbyte_timeout_s", 0.0, "must be a number from 1 to 604800"),
    ("mlops", "workers", [], "must list at least one worker index"),
    ("mlops", "workers", [0, 0], "must not repeat a worker index"),
    ("mlops", "workers", [-1], "integers from 0"),
    ("mlops", "trials_per_worker", -5, "must be an integer from 1 to 10000"),
    ("mlops", "expected_trials", 7, "must equal workers x trials_per_worker (2 x 10 = 20)"),
    ("mlops", "trial_epochs", 0, "must be an integer from 1 to 10000"),
    ("mlops", "margin", -1.0, "must be a number from 0 to 1"),
    ("mlops", "margin", float("nan"), "must be a number from 0 to 1"),
    ("mlops", "slice_tolerance", 2.0, "must be a number from 0 to 1"),
    ("mlops", "optuna_storage", "redis://x", "must be an Optuna RDB URL"),
    ("mlops", "param_overrides", "[1]", "must be a JSON object"),
    ("mlops", "param_overrides", '{"nope": 1}', "unknown key(s) ['nope']"),
    ("mlops", "experiment", " ", "must be a non-empty string"),
    ("mlops", "as_of", "yesterday", "must be empty or an ISO 8601 instant"),
    ("continual", "policy_json", "{bad", "drift policy is not valid JSON"),
    ("continual", "policy_json", '{"min_window": 1}', "min_window and min_labels must be at least 2"),
]


@pytest.mark.parametrize("pipeline, name, value, message", BAD, ids=[f"{b[0]}-{b[1]}-{b[2]!r}" for b in BAD])
def test_a_bad_parameter_is_named_with_what_is_allowed(pipeline: str, name: str, value, message: str) -> None:
    with pytest.raises(params.ParamError) as refused:
        params.check(pipeline, registry.load(pipeline), {name: value})
    assert str(refused.value).startswith(f"{pipeline}: parameter {name}=")
    assert message in str(refused.value)


def test_server_settings_are_checked_only_for_an_airbyte_server() -> None:
    dataops = registry.load("dataops")
    params.check("dataops", dataops, {"mode": "embedded", "airbyte_url": ""})
    with pytest.raises(params.ParamError, match="airbyte_url='' must be the Airbyte server's http"):
        params.check("dataops", dataops, {"mode": "server"})
    with pytest.raises(params.ParamError, match="projects_connection_id='' must be a non-empty string"):
        params.check("dataops", dataops, {"mode": "server", "airbyte_url": "http://airbyte:8000"})


@pytest.mark.parametrize("pipeline", ["dataops", "mlops", "continual"])
def test_every_parameter_of_every_pipeline_has_a_rule_and_the_defaults_pass(pipeline: str) -> None:
    func = registry.load(pipeline)
    checked = params.check(pipeline, func, {})
    assert set(checked) == set(func.component_spec.inputs)
    assert set(checked) <= set(params.RULES) | params.FREE


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--param", "margin=-1"], "mlops: parameter margin=-1.0 must be a number from 0 to 1"),
        (["--param", "audit_schema=mlops_course"], "must not be the published schema"),
        (["--trials", "-5"], "--trials and --workers must be at least 1"),
        (["--param", "workers=[]"], "must list at least one worker index"),
        (["--source", "sample:abc"], "sample:ROWS takes a positive whole number of rows"),
        (["--param", "as_of=2026-13-01"], "must be empty or an ISO 8601 instant"),
    ],
)
def test_run_all_refuses_a_bad_parameter_of_either_pipeline_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags, message
) -> None:
    monkeypatch.setenv("KFP_MLOPS_WARM", "0")
    stores = tmp_path / "stores"
    (stores / "runs").mkdir(parents=True)
    (stores / "warehouse.duckdb").write_bytes(b"the published warehouse, as it was")
    before = _digest(stores)
    assert pipelines_main(["run", "all", "--local", "--stores", str(stores), *flags]) == 2
    assert message in capsys.readouterr().err
    after = _digest(stores)
    assert {k: v for k, v in after.items() if not k.startswith("stores.")} == before  # nothing changed
    assert not any((stores / "runs").iterdir())  # no task ran


_HOLD_STORES = """
    import sys
    from pathlib import Path
    from components import warehouse_lock
    with warehouse_lock.turn(Path(sys.argv[1]) / "stores", write=True, purpose="run dataops",
                             holder="python -m pipelines (dataops)", noun="stores folder"):
        print("holding", flush=True)
        sys.stdin.readline()
"""


@pytest.fixture
def held_stores(tmp_path: Path):
    stores = tmp_path / "stores"
    stores.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLD_STORES), str(stores)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    yield stores, proc
    if proc.poll() is None:
        proc.communicate("\n", timeout=30)


def test_a_second_run_on_busy_stores_fails_at_once_naming_the_first(
    held_stores, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stores, holder = held_stores
    monkeypatch.setenv("KFP_MLOPS_WARM", "0")
    code = pipelines_main(["run", "dataops", "--local", "--stores", str(stores), "--if-busy", "fail"])
    err = capsys.readouterr().err
    assert code == 3
    assert f"stores folder {stores / 'stores'} is busy" in err
    assert f"step python -m pipelines (dataops) (run dataops; write; pid {holder.pid}" in err
    assert "use --if-busy wait" in err
    assert not (stores / "warehouse.duckdb").exists()


def test_a_second_run_waits_for_busy_stores_within_its_bound(
    held_stores, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stores, _ = held_stores
    monkeypatch.setenv("KFP_MLOPS_WARM", "0")
    monkeypatch.setenv("KFP_MLOPS_STORES_WAIT", "3")
    code = pipelines_main(["run", "dataops", "--local", "--stores", str(stores)])
    err = capsys.readouterr().err
    assert code == 3
    assert "waiting for the stores folder" in err and "is busy: waited 3 s" in err
    assert "raise KFP_MLOPS_STORES_WAIT to wait longer" in err
