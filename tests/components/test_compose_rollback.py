"""compose (fixed eval set, balanced classes) and rollback (which version, tags, errors).

compose reads a parquet snapshot of the published table (extract's output in the continual
pipeline), never the warehouse. Real DuckDB, real MLflow (one sqlite store for the module;
every test uses its own registered model name, so they do not see each other's versions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kfp import dsl

from components.compose.component import compose
from components.compose.core import compose as compose_rows
from components.compose.core import eval_mask
from components.cutoff import NO_CUTOFF, resolve
from components.extract.component import extract as extract_component
from components.extract.core import extract
from components.parquet import write_parquet
from components.promote.core import promote
from components.registry import previous_version
from components.rollback.component import rollback as rollback_component
from components.rollback.core import NoPreviousVersion, rollback
from components.snapshot import Origin
from components.train.core import train_and_register
from components.warehouse import RAW_SCHEMA, duckdb_connect
from tagifai import tracking
from tagifai.config import DataConfig, TrainParams
from tagifai.data import map_tags, prepare, split
from tagifai.evaluate import short_text
from tagifai.sample import generate_sample

COLUMNS = ["id", "created_on", "title", "description", "tag"]


def publish(warehouse: Path, df: pd.DataFrame) -> str:
    with duckdb_connect(warehouse) as con:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.register("frame", df[COLUMNS])
        con.execute(
            f"create or replace table {RAW_SCHEMA}.labeled_projects as select * from frame order by id"
        )
    return f"duckdb:///{warehouse}"


def snapshot(path: Path, df: pd.DataFrame) -> Path:
    """`df` as the parquet snapshot extract would write (extract's columns, sorted by id)."""
    return write_parquet(df[COLUMNS].sort_values("id").reset_index(drop=True), path)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("compose_rollback")
    model_dir = tmp / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text("{}")  # registry tests never load the model
    return {"tmp": tmp, "uri": f"sqlite:///{tmp / 'mlflow.db'}", "model_dir": model_dir}


def register(store: dict[str, Any], name: str, count: int) -> list[str]:
    versions = []
    for i in range(count):
        run_id = tracking.log_run(
            store["uri"],
            "rollback-tests",
            run_name=f"{name}-{i}",
            artifacts={tracking.MODEL_ARTIFACT_PATH: store["model_dir"]},
            artifact_location=str(store["tmp"] / "mlartifacts"),
        )
        versions.append(tracking.register_model(store["uri"], run_id, name=name))
    return versions


def champion(uri: str, name: str) -> tuple[str, dict[str, str]]:
    mv = tracking.get_alias(uri, tracking.CHAMPION, name)
    assert mv is not None
    return str(mv.version), dict(mv.tags)


def tags_of(uri: str, name: str, version: str) -> dict[str, str]:
    return dict(tracking.client(uri).get_model_version(name, version).tags)


# --------------------------------------------------------------------------- rollback


def test_rollback_returns_to_the_version_the_champion_was_promoted_from(store: dict[str, Any]) -> None:
    uri, name = store["uri"], "promoted-chain"
    assert register(store, name, 3) == ["1", "2", "3"]
    promote(uri, "1", "first", name=name)  # v2 was trained but never promoted
    promote(uri, "3", "better", name=name)
    assert previous_version(uri, name=name) == "1"

    out = rollback(uri, "live F1 dropped", name=name)

    assert (out.version, out.rolled_back_from, out.changed) == ("1", "3", True)
    version, tags = champion(uri, name)
    assert version == "1"
    assert (tags["rolled_back_from"], tags["rollback_reason"]) == ("3", "live F1 dropped")
    demoted = tags_of(uri, name, "3")
    assert (demoted["rolled_back_to"], demoted["rollback_reason"]) == ("1", "live F1 dropped")
    assert "rolled_back_from" not in tags_of(uri, name, "2")
    # v1 was the first champion: going further back is an error, not a silent no-op.
    with pytest.raises(
        NoPreviousVersion, match=r"v1 has no previous version to roll back to \(promoted_from=none"
    ):
        rollback(uri, "again", name=name)
    assert champion(uri, name)[0] == "1"


def test_rollback_without_promotion_tags_picks_the_highest_former_champion(store: dict[str, Any]) -> None:
    uri, name = store["uri"], "hand-set-alias"
    register(store, name, 4)
    promote(uri, "1", "first", name=name)
    tracking.set_alias(uri, "4", tracking.CHAMPION, name)  # set by hand: no promoted_from on v4
    # v2 and v3 were never champions; v1 was.
    assert previous_version(uri, name=name) == "1"
    assert rollback(uri, "by hand", name=name).version == "1"


def test_rollback_falls_back_to_the_highest_lower_version(store: dict[str, Any]) -> None:
    uri, name = store["uri"], "untagged"
    register(store, name, 3)
    tracking.set_alias(uri, "3", tracking.CHAMPION, name)
    assert rollback(uri, "untagged registry", name=name).version == "2"


def test_rollback_errors_and_idempotent_retry(store: dict[str, Any]) -> None:
    uri, name = store["uri"], "errors"
    with pytest.raises(NoPreviousVersion, match="errors has no champion"):
        rollback(uri, "nothing", name=name)
    register(store, name, 2)
    promote(uri, "1", "first", name=name)
    promote(uri, "2", "second", name=name)
    assert rollback(uri, "bad v2", from_version="2", name=name).changed
    retry = rollback(uri, "bad v2", from_version="2", name=name)  # a retried task
    assert (retry.version, retry.changed) == ("1", False)
    assert champion(uri, name)[0] == "1"
    with pytest.raises(NoPreviousVersion, match="the champion is v1, not v7"):
        rollback(uri, "wrong", from_version="7", name=name)


def test_rollback_component(store: dict[str, Any]) -> None:
    uri = store["uri"]
    register(store, tracking.MODEL_NAME, 2)
    promote(uri, "1", "first")
    promote(uri, "2", "second")
    assert (
        rollback_component.python_func(tracking_uri=uri, reason="monitor: rollback").champion_version == "1"
    )
    assert champion(uri, tracking.MODEL_NAME)[1]["rollback_reason"] == "monitor: rollback"
    with pytest.raises(NoPreviousVersion):
        rollback_component.python_func(tracking_uri=uri, reason="again")


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    projects, tags = generate_sample(1500, seed=3)
    return projects.merge(tags, on="id")


def test_compose_keeps_the_eval_set_fixed_and_balances(
    store: dict[str, Any], sample: pd.DataFrame, tmp_path: Path
) -> None:
    uri, name = store["uri"], "compose-champion"
    first, later = sample.iloc[:1000], sample.iloc[1000:]
    warehouse = publish(tmp_path / "warehouse.duckdb", first)
    # A real champion trained on the first 1000 rows, so compose can tell old from new.
    data = extract(warehouse, tmp_path / "v1" / "dataset.parquet")
    (tmp_path / "params.json").write_text(json.dumps(TrainParams(analyzer="word", num_epochs=3).to_dict()))
    trained = train_and_register(
        data.path,
        tmp_path / "params.json",
        uri,
        tmp_path / "v1" / "model",
        artifact_root=str(tmp_path / "mlartifacts"),
        register_as=name,
        data_version=data.data_version,
    )
    promote(uri, trained.version, "first", name=name)

    # 500 new labeled rows arrive; compose reads the run's snapshot, not the warehouse.
    snap = snapshot(tmp_path / "snapshot.parquet", sample)
    a = compose_rows(snap, uri, tmp_path / "a.parquet", name=name)
    b = compose_rows(snap, uri, tmp_path / "b.parquet", name=name)
    out = pd.read_parquet(a.path)

    # Deterministic: the same snapshot gives the same set.
    assert a.data_version == b.data_version and out.equals(pd.read_parquet(b.path))
    # extract's columns, sorted by id: the mlops steps can consume it.
    assert list(out.columns) == COLUMNS and out["id"].is_monotonic_increasing
    assert all(len(part) for part in split(prepare(out)))
    # The fixed eval set: about 15% of the ids, never in a training set.
    held = set(sample.loc[eval_mask(sample["id"], 0.15, 1234), "id"])
    assert 0.12 < len(held) / len(sample) < 0.18 and a.eval_rows == len(held)
    assert not held & set(out["id"])
    assert (a.reference_method, a.reference_rows + a.new_rows) == ("max_id", len(sample) - len(held))
    assert a.new_rows == len(set(later["id"]) - held)
    # Balanced: no class more than 3x the smallest; the pool was more skewed.
    pool_counts, counts = a.pool_class_counts, a.class_counts
    assert max(pool_counts.values()) / min(pool_counts.values()) > 4
    assert set(counts) == set(pool_counts) and counts["mlops"] == pool_counts["mlops"]
    assert max(counts.values()) <= 3 * min(counts.values())
    assert counts == {
        k: int(v)
        for k, v in map_tags(out["tag"], DataConfig().accepted_tags, DataConfig().min_freq)
        .value_counts()
        .items()
    }
    # Stratified: within the down-sampled class the short-text slice and the new rows keep
    # their shares.
    pool = sample[~sample["id"].isin(held)]
    nlp_pool = pool[pool["tag"] == "natural-language-processing"]
    nlp_out = out[out["tag"] == "natural-language-processing"]
    assert len(nlp_out) < len(nlp_pool)

    def share_short(df: pd.DataFrame) -> float:
        return float(short_text(prepare(df)).mean())

    assert abs(share_short(nlp_out) - share_short(nlp_pool)) < 0.01
    new_ids = set(later["id"])
    assert abs(nlp_out["id"].isin(new_ids).mean() - nlp_pool["id"].isin(new_ids).mean()) < 0.01

    # Rows keep arriving: the eval rows of before are still held out, the sample moves little.
    grown = pd.concat([sample, later.assign(id=later["id"] + 1000)])
    c = compose_rows(snapshot(tmp_path / "grown.parquet", grown), uri, tmp_path / "c.parquet", name=name)
    out_c = pd.read_parquet(c.path)
    assert not held & set(out_c["id"])
    assert set(grown.loc[eval_mask(grown["id"], 0.15, 1234), "id"]) >= held


def test_compose_component_without_champion(sample: pd.DataFrame, tmp_path: Path) -> None:
    """No champion yet: every labeled row is new; still balanced, nothing held out at fraction 0.
    The input is a snapshot with no warehouse behind it; its metadata names table and cutoff."""
    cut = resolve(as_of="2031-01-01")
    snap = dsl.Dataset(
        uri=str(snapshot(tmp_path / "snapshot.parquet", sample)),
        metadata={"table": "mlops_course.labeled_projects", "rows": len(sample), **cut.metadata()},
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    composed = dsl.Dataset(uri=str(tmp_path / "composed.parquet"))
    compose.python_func(dataset=snap, tracking_uri=uri, retraining_set=composed, eval_fraction=0.0)
    meta = composed.metadata
    out = pd.read_parquet(composed.path)
    assert (meta["rows"], meta["eval_rows"], meta["champion"], meta["reference_method"]) == (
        len(out),
        0,
        "",
        "none",
    )
    assert (meta["reference_rows"], meta["new_rows"]) == (0, len(sample))
    assert meta["data_version"] and meta["table"] == "mlops_course.labeled_projects"
    assert sum(meta["class_counts"].values()) == len(out) < len(sample)
    # The cutoff comes from the snapshot's metadata (compose does not cut again).
    assert {k: meta[k] for k in ("as_of", "as_of_source", "as_of_note")} == cut.metadata()
    assert (meta["eval_fraction"], meta["seed"]) == (0.0, 1234)
    with pytest.raises(ValueError, match=r"eval_fraction must be in \[0, 1\)"):
        compose.python_func(dataset=snap, tracking_uri=uri, retraining_set=composed, eval_fraction=1.0)


def test_compose_reads_only_the_snapshot_extract_took(sample: pd.DataFrame, tmp_path: Path) -> None:
    """extract cuts the table as of a time; rows published later, or created after the cutoff,
    never reach the retraining set, even with the warehouse gone."""
    db = tmp_path / "warehouse.duckdb"
    warehouse = publish(db, sample)
    created = pd.to_datetime(sample["created_on"])
    as_of = (created.min() + (created.max() - created.min()) * 0.7).strftime("%Y-%m-%dT%H:%M:%SZ")
    snap = dsl.Dataset(uri=str(tmp_path / "snapshot" / "dataset.parquet"))
    extract_component.python_func(warehouse=warehouse, dataset=snap, as_of=as_of)
    seen = set(pd.read_parquet(snap.path)["id"])
    assert 0 < len(seen) < len(sample)
    # After the snapshot: more rows are published, then the warehouse is gone.
    publish(db, pd.concat([sample, sample.assign(id=sample["id"] + 10_000)]))
    db.unlink()

    composed = dsl.Dataset(uri=str(tmp_path / "composed.parquet"))
    compose.python_func(
        dataset=snap, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", retraining_set=composed
    )
    out = pd.read_parquet(composed.path)
    assert set(out["id"]) <= seen and len(out) == composed.metadata["rows"]
    meta = composed.metadata
    assert (meta["as_of"], meta["as_of_source"], meta["table"]) == (as_of, "as_of", snap.metadata["table"])
    assert meta["as_of_note"] == snap.metadata["as_of_note"] == f"as_of {as_of}: rows created before it"
    assert meta["eval_rows"] + meta["new_rows"] == len(seen)  # every snapshot row is labeled


def test_compose_names_the_snapshot_when_it_cannot_be_used(tmp_path: Path) -> None:
    no_tags = write_parquet(pd.DataFrame({"id": [1], "created_on": ["2026-01-01"]}), tmp_path / "x.parquet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(
        ValueError,
        match=rf"the snapshot of mlops_course.labeled_projects at {no_tags} lacks column\(s\) "
        r"\['title', 'description', 'tag'\]",
    ):
        compose_rows(no_tags, uri, tmp_path / "out.parquet")
    empty = write_parquet(pd.DataFrame({c: pd.Series(dtype=str) for c in COLUMNS}), tmp_path / "e.parquet")
    with pytest.raises(ValueError, match=rf"snapshot of a.b at {empty} has no rows"):
        compose_rows(empty, uri, tmp_path / "out.parquet", origin=Origin("a.b", NO_CUTOFF))
