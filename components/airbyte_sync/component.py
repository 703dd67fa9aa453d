"""KFP wrapper of the airbyte_sync step (logic in ``client.py`` and ``embedded.py``)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Output

from components.step import AIRBYTE_CREDENTIALS, STORES, WAREHOUSE_CREDENTIALS, step_component


@step_component("airbyte_sync", needs=(AIRBYTE_CREDENTIALS, WAREHOUSE_CREDENTIALS, STORES), external=True)
def airbyte_sync(
    stream: str,
    warehouse: str,
    table: Output[Dataset],
    mode: str = "embedded",
    source: str = "sample",
    connection_id: str = "",
    airbyte_url: str = "",
    poll_interval_s: float = 5.0,
    timeout_s: float = 3600.0,
) -> NamedTuple("Outputs", [("job_id", str), ("status", str), ("records", int)]):  # type: ignore[valid-type]
    """Extract and load one source stream into the warehouse's raw schema.

    Args:
        stream: The stream to load: ``projects`` or ``tags``.
        warehouse: Warehouse URI (``duckdb:///path.duckdb`` or ``bigquery://PROJECT``).
        mode: ``embedded`` loads the source's CSV into DuckDB here; ``server`` runs the
            Airbyte connection ``connection_id`` and waits for it (any destination).
        source: Embedded mode: a dataset name or folder, resolved by
            ``tagifai.datasets.resolve_source``.
        connection_id: Server mode: the Airbyte connection that syncs this stream.
        airbyte_url: Server mode: Airbyte's address, e.g. ``http://airbyte:8000``.
            Credentials come from the environment: ``AIRBYTE_CLIENT_ID`` and
            ``AIRBYTE_CLIENT_SECRET``, or ``AIRBYTE_USERNAME`` and ``AIRBYTE_PASSWORD``.
        poll_interval_s: Server mode: seconds between job status polls.
        timeout_s: Server mode: seconds to wait before the job is cancelled and the task fails.

    Returns:
        table: A reference to the raw table ``mlops_course.<stream>`` (warehouse, rows,
            data version), with the job id, status and records in its metadata.
        job_id: The Airbyte job id (server mode) or the load id (embedded mode).
        status: The job's final status (``succeeded``).
        records: Records loaded.
    """
    import logging
    import os
    from collections import namedtuple

    from components.artifacts import TableRef, write_table_ref
    from components.warehouse import RAW_SCHEMA, ident, parse_uri

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    Outputs = namedtuple("Outputs", ["job_id", "status", "records"])

    if mode == "embedded":
        from components.airbyte_sync.embedded import load_stream
        from tagifai.datasets import resolve_source

        ref = load_stream(resolve_source(source), stream, warehouse)
        job_id, status, records = f"embedded-{ref.data_version}", "succeeded", ref.rows
    elif mode == "server":
        from components.airbyte_sync.client import AirbyteClient

        if not airbyte_url or not connection_id:
            raise ValueError("mode='server' needs airbyte_url and connection_id")
        client = AirbyteClient(
            airbyte_url,
            client_id=os.environ.get("AIRBYTE_CLIENT_ID") or None,
            client_secret=os.environ.get("AIRBYTE_CLIENT_SECRET") or None,
            username=os.environ.get("AIRBYTE_USERNAME") or None,
            password=os.environ.get("AIRBYTE_PASSWORD") or None,
        )
        result = client.sync(connection_id, poll_interval=poll_interval_s, timeout=timeout_s)
        job_id, status, records = str(result.job_id), result.status, result.records_synced
        ref = TableRef(
            warehouse=str(parse_uri(warehouse)),
            schema=RAW_SCHEMA,
            table=ident(stream),
            rows=records,
            data_version=f"airbyte-job-{job_id}",
        )
    else:
        raise ValueError(f"mode must be 'embedded' or 'server', not {mode!r}")

    write_table_ref(table, ref)
    table.metadata.update({"mode": mode, "job_id": job_id, "status": status, "records": records})
    return Outputs(job_id, status, records)
