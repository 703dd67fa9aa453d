"""Turns at the DuckDB warehouse (components/warehouse_lock.py), between real processes.

Argo starts tasks whose own upstreams are done at the same time, so a sync, a validation
and a publish can open the warehouse file together. These tests start the competing
processes at the same moment (each waits for one "go" file) and check that every one of
them succeeds and sees a whole table, that a wait ends with the holder named, and that a
killed holder leaves nothing locked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from components import warehouse_lock
from components.airbyte_sync.embedded import load_stream
from components.versions import table_version
from components.warehouse import WarehouseError, duckdb_connect
from tagifai.sample import write_sample

ROOT = Path(__file__).resolve().parents[2]


def _spawn(code: str, *argv: str) -> subprocess.Popen[str]:
    """A Python process running `code` (argv as kfp's executor gives a step's name)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *argv],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


_HOLD = """
    import sys
    from components import warehouse_lock
    with warehouse_lock.turn(sys.argv[3], write=sys.argv[4] == "write", purpose=sys.argv[5]):
        print("holding", flush=True)
        sys.stdin.readline()
"""


def _holder(db: Path, mode: str, purpose: str, step: str = "airbyte_sync") -> subprocess.Popen[str]:
    proc = _spawn(_HOLD, "--function_to_execute", step, str(db), mode, purpose)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding", proc.stderr
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.communicate("\n", timeout=30)


def test_a_wait_that_runs_out_names_the_holders_step_and_purpose(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    holder = _holder(db, "write", "load mlops_course.tags")
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseError) as caught, duckdb_connect(db, read_only=False, wait_s=0.5):
            pass
        message = str(caught.value)
        assert time.monotonic() - started < 10
        assert "is busy: waited" in message and "KFP_MLOPS_WAREHOUSE_LOCK_TIMEOUT" in message
        assert "step airbyte_sync (load mlops_course.tags; write;" in message
        assert f"pid {holder.pid}" in message
    finally:
        _release(holder)


def test_readers_share_the_warehouse_and_a_writer_waits_for_them(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    with duckdb_connect(db) as con:
        con.execute("create table t as select 1 as x")
    reader = _holder(db, "read", "validate t", step="ge_validate")
    try:
        # A second reader gets its turn at once beside the first...
        with duckdb_connect(db, read_only=True, wait_s=5) as con:
            assert con.execute("select x from t").fetchone() == (1,)
        # ...a writer does not.
        with pytest.raises(WarehouseError, match="step ge_validate"), duckdb_connect(db, wait_s=0.3):
            pass
    finally:
        _release(reader)
    with duckdb_connect(db, wait_s=5) as con:
        assert con.execute("select count(*) from t").fetchone() == (1,)


def test_a_killed_holder_leaves_nothing_locked_and_its_record_is_dropped(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    holder = _holder(db, "write", "publish labeled_projects", step="publish")
    assert [r["step"] for r in warehouse_lock.holders(db)] == ["publish"]
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(30)
    with duckdb_connect(db, wait_s=2) as con:
        con.execute("create table t as select 1 as x")
        assert warehouse_lock.holders(db)[0]["pid"] == os.getpid()  # only this process now
    assert warehouse_lock.holders(db) == []
    assert not list((tmp_path / "wh.duckdb.holders").glob("*.json"))


def test_nested_turns_in_one_thread_ride_on_the_outer_one(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    with (
        warehouse_lock.turn(db, write=True, purpose="outer"),
        warehouse_lock.turn(db, write=False, purpose="inner read", wait_s=0.1),
    ):
        assert len(warehouse_lock.holders(db)) == 1
    with (
        warehouse_lock.turn(db, write=False, purpose="outer read"),
        pytest.raises(RuntimeError, match="write turn was asked for inside a read turn"),
        warehouse_lock.turn(db, write=True, purpose="inner write"),
    ):
        pass


def test_the_timeout_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(warehouse_lock.TIMEOUT_ENV, "2.5")
    assert warehouse_lock.timeout_s() == 2.5
    monkeypatch.setenv(warehouse_lock.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="is not a number of seconds"):
        warehouse_lock.timeout_s()
    monkeypatch.setenv(warehouse_lock.TIMEOUT_ENV, "-1")
    with pytest.raises(ValueError, match="must not be negative"):
        warehouse_lock.timeout_s()
    monkeypatch.delenv(warehouse_lock.TIMEOUT_ENV)
    assert warehouse_lock.timeout_s() == warehouse_lock.DEFAULT_TIMEOUT_S


_SYNC = """
    import json, sys, time
    from pathlib import Path
    go = Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    from components.airbyte_sync.embedded import load_stream
    ref = load_stream(sys.argv[4], "projects", sys.argv[5])
    print(json.dumps({"rows": ref.rows, "version": ref.data_version}))
"""

_VALIDATE = """
    import json, sys, time
    from pathlib import Path
    go = Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    from components.ge_validate.core import validate_table
    summary = validate_table(sys.argv[4], "mlops_course", "projects", "projects")
    print(json.dumps({"rows": summary.rows, "version": summary.data_version, "ok": summary.success}))
"""


def test_a_writer_and_a_reader_started_together_both_succeed_on_whole_tables(tmp_path: Path) -> None:
    # The reader validates raw projects while the writer replaces it with a larger source:
    # the validation must see the old table or the new one, whole, and neither may fail.
    old, new = write_sample(tmp_path / "old", rows=1_000), write_sample(tmp_path / "new", rows=200_000)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    load_stream(old, "projects", wh)
    before = table_version(wh, "mlops_course", "projects")
    go = tmp_path / "go"
    writer = _spawn(_SYNC, "--function_to_execute", "airbyte_sync", str(go), str(new), wh)
    reader = _spawn(_VALIDATE, "--function_to_execute", "ge_validate", str(go), wh)
    time.sleep(0.5)  # both imported and polling for "go"
    go.touch()
    outs = []
    for proc in (writer, reader):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    wrote, read = outs
    assert wrote["rows"] == 200_000
    assert read["ok"] is True
    after = table_version(wh, "mlops_course", "projects")
    assert before[0] == 1_000 and after[0] == 200_000
    assert (read["rows"], read["version"]) in {before, after}
