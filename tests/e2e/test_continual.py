"""Continual learning end to end on the embedded default: no new data -> continue; a
label-shifted batch of new rows -> improve -> a retrained version behind the gate; a backfill
over the shift sees the table as it was at each instant. Each run snapshots the table once
(extract) and monitor and compose read that snapshot."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tagifai import tracking

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_continual_continues_then_improves_on_label_shift(tmp_path, madewithml_dir, pipelines_cli) -> None:
    cli = pipelines_cli
    stores = tmp_path / "stores"
    fast = ("--trials", "2", "--workers", "1")
    cli("run", "all", "--local", "--source", str(madewithml_dir), *fast, stores=stores)
    uri = f"sqlite:///{stores / 'mlflow.db'}"
    assert str(tracking.get_alias(uri).version) == "1"

    # Nothing new since the champion's data: nothing changes.
    quiet = cli("run", "continual", "--local", *fast, stores=stores)
    assert quiet["decision"] == "continue"
    assert [str(v.version) for v in tracking.list_versions(uri)] == ["1"]
    [report] = [Path(p) for p in quiet["reports"] if p.endswith("monitor-drift.report.html")]
    names = [t["name"] for t in quiet["tasks"]]
    assert names.count("snapshot labeled_projects") == 1 and "monitor drift" in names
    assert "rows of mlops_course.labeled_projects; no cutoff: every row." in report.read_text()

    # New labeled rows arrive, nearly all MLOps projects: the label mix shifted.
    with duckdb.connect(str(stores / "warehouse.duckdb")) as con:
        con.execute("""
            insert into mlops_course.labeled_projects
            select id + 100000 * (k + 1), created_on + interval 1000 day, title || ' (edition ' || k || ')',
                   description, tag
            from mlops_course.labeled_projects, range(3) t(k)
            where tag = 'mlops'
        """)
    # Backfill two instants: before the shifted rows were created (the table as it was then:
    # nothing new) and after (the shift is there): one run each, in time order.
    span = ("--start", "2021-01-01", "--end", "2024-01-01", "--every", "1095d")
    filled = cli("backfill", "continual", *span, *fast, stores=stores)
    before, shifted = filled["runs"]
    assert (before["as_of"], before["decision"]) == ("2021-01-01T00:00:00Z", "continue")
    assert "model_version" not in before
    assert shifted["as_of"] == "2024-01-01T00:00:00Z"
    assert shifted["decision"] == "improve"
    assert shifted["model_version"] == "2"  # retrained on the composed set and registered
    champion = str(tracking.get_alias(uri).version)
    # the gate decided; the registry agrees with it
    assert champion == ("2" if shifted["gate"] == "promote" else "1")
    tasks = [t["name"] for t in shifted["tasks"]]
    assert "compose retraining set" in tasks and "train" in tasks and "roll back champion" not in tasks
    # One snapshot, cut at the run's as_of, fed monitor and compose: the monitor's report
    # (the newest run's, behind the latest pointer) shows the cutoff recorded on it, and the
    # first run kept its own.
    assert tasks.count("snapshot labeled_projects") == 1
    latest = stores / "reports" / "continual" / "monitor-drift.report.html"
    assert "as_of 2024-01-01T00:00:00Z: rows created before it" in latest.read_text()
    assert "no cutoff: every row." in report.read_text()

    # Each check is a run in MLflow's monitoring experiment, oldest first: its decision, the
    # continual run that made it (kfp.local's run folder), the report beside the stores.
    client = tracking.client(uri)
    monitoring = client.get_experiment_by_name("tagifai-monitoring")
    checks = client.search_runs([monitoring.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags["decision"] for r in checks] == ["continue", "continue", "improve"]
    made_by = [r.data.tags["kfp.pipeline_run_name"] for r in checks]
    assert made_by[0] == Path(quiet["pipelines"][0]["run_dir"]).name
    assert all(name.startswith("continual-") for name in made_by) and len(set(made_by)) == 3
    # Nothing new at first: no test ran, so none has numbers; the shift fires the label test.
    assert checks[0].data.metrics["new_rows"] == 0 and "label_p_value" not in checks[0].data.metrics
    assert checks[-1].data.metrics["label_fired"] == 1.0 and checks[-1].data.metrics["label_p_value"] < 0.05
    assert checks[-1].data.tags["as_of"] == "2024-01-01T00:00:00Z"
    assert checks[-1].info.artifact_uri.startswith(("file://" + str(stores), str(stores)))

    # The same backfill again: both instants succeeded before, nothing runs, nothing changes.
    again = cli("backfill", "continual", *span, *fast, stores=stores)
    assert [(r["skipped"], r["decision"]) for r in again["runs"]] == [(True, "continue"), (True, "improve")]
    assert len(tracking.list_versions(uri)) == 2
