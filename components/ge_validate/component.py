"""KFP wrapper of the ge_validate step (logic in ``components.ge_validate.core``)."""

from typing import NamedTuple

from kfp.dsl import HTML, Dataset, Input, Output

from components.step import STORES, WAREHOUSE_CREDENTIALS, step_component


@step_component("ge_validate", needs=(WAREHOUSE_CREDENTIALS, STORES))
def ge_validate(
    dataset: Input[Dataset],
    suite: str,
    data_docs: Output[HTML],
    raise_on_failure: bool = True,
) -> NamedTuple("Outputs", [("success", bool), ("failed_expectations", int)]):  # type: ignore[valid-type]
    """Validate a table or dataset against a committed Great Expectations suite.

    The task fails, naming each failed expectation, its column(s) and the number of rows
    that broke it, when the suite fails (unless ``raise_on_failure`` is false). The report
    is written first, pass or fail.

    Args:
        dataset: A table reference (from airbyte_sync, dbt_transform, extract) or parquet.
        suite: Suite name under ``great_expectations/gx/expectations/``: ``projects``,
            ``tags`` or ``labeled_projects``.
        raise_on_failure: Fail the task on a failed suite. When false the task succeeds
            and reports through its outputs, e.g. to branch with ``dsl.If``.

    Returns:
        data_docs: Self-contained HTML report of every expectation: status, column(s),
            observed value or unexpected count, sample unexpected values.
        success: Whether every expectation of the suite passed.
        failed_expectations: How many expectations failed.
    """
    from collections import namedtuple

    from components.ge_validate.core import validate_input
    from components.ge_validate.results import ValidationFailed

    summary = validate_input(
        dataset.path, suite, metadata=dataset.metadata, data_docs_path=data_docs.path, raise_on_failure=False
    )
    data_docs.metadata.update(
        {
            "suite": summary.suite,
            "success": summary.success,
            "evaluated": summary.evaluated,
            "failed": summary.failed,
            "rows": summary.rows,
            "data_version": summary.data_version,
            "source": summary.source,
            "failures": [f.describe() for f in summary.failures],
        }
    )
    if raise_on_failure and not summary.success:
        raise ValidationFailed(summary)
    Outputs = namedtuple("Outputs", ["success", "failed_expectations"])
    return Outputs(summary.success, summary.failed)
