"""DataOps: sync projects and tags, validate each, transform with dbt, validate, publish.

airbyte_sync(projects) -> ge_validate(projects) -+
airbyte_sync(tags)     -> ge_validate(tags)     -+-> dbt_transform -> ge_validate(labeled_projects) -> publish
"""

from kfp import dsl

from components.airbyte_sync.component import airbyte_sync
from components.dbt_transform.component import dbt_transform
from components.ge_validate.component import ge_validate
from components.publish.component import publish
from pipelines.platform import wire
from pipelines.settings import CLUSTER_SOURCE, CLUSTER_WAREHOUSE


@dsl.pipeline(
    name="dataops",
    description="Airbyte sync of projects and tags -> GX validation -> dbt labeled_projects "
    "(audit schema) -> GX validation -> publish to mlops_course.labeled_projects.",
)
def dataops(
    source: str = CLUSTER_SOURCE,
    mode: str = "embedded",
    warehouse: str = CLUSTER_WAREHOUSE,
    airbyte_url: str = "",
    projects_connection_id: str = "",
    tags_connection_id: str = "",
    audit_schema: str = "mlops_course_audit",
    airbyte_timeout_s: float = 3600.0,
) -> int:
    syncs = {}
    validations = []
    # What the two syncs share; each names its own stream and connection.
    loader = {
        "warehouse": warehouse,
        "mode": mode,
        "source": source,
        "airbyte_url": airbyte_url,
        "timeout_s": airbyte_timeout_s,
    }
    for stream, connection_id in (("projects", projects_connection_id), ("tags", tags_connection_id)):
        sync = airbyte_sync(stream=stream, connection_id=connection_id, **loader)
        # A sync must always run: a cached result would skip loading new data.
        wire(sync).set_display_name(f"sync {stream}")
        check = ge_validate(dataset=sync.outputs["table"], suite=stream)
        wire(check).set_display_name(f"validate {stream}")
        syncs[stream] = sync
        validations.append(check)

    transform = dbt_transform(
        projects=syncs["projects"].outputs["table"],
        tags=syncs["tags"].outputs["table"],
        warehouse=warehouse,
        target_schema=audit_schema,
    ).after(*validations)
    wire(transform).set_display_name("transform labeled_projects")

    audit = ge_validate(dataset=transform.outputs["labeled_projects"], suite="labeled_projects")
    wire(audit).set_display_name("validate labeled_projects")

    published = publish(audited=transform.outputs["labeled_projects"]).after(audit)
    wire(published).set_display_name("publish labeled_projects")
    return published.outputs["rows_published"]
