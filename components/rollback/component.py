"""KFP wrapper of the rollback step (logic in ``components.rollback.core``)."""

from typing import NamedTuple

from components.step import MLFLOW_CREDENTIALS, STORES, step_component


@step_component("rollback", image="train", needs=(MLFLOW_CREDENTIALS, STORES))
def rollback(
    tracking_uri: str,
    reason: str,
    from_version: str = "",
) -> NamedTuple("Outputs", [("champion_version", str)]):  # type: ignore[valid-type]
    """Move the ``champion`` alias of ``tagifai`` back to the version it replaced.

    The target is the champion's ``promoted_from`` version (written by promote); without
    that tag, the highest lower version that was a champion once, else the highest lower
    version. The new champion gets the tags ``rolled_back_from`` and ``rollback_reason``,
    the demoted one ``rolled_back_to`` and ``rollback_reason``. Fails with a clear message
    when there is no previous version.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        reason: Why (e.g. the monitor's decision and numbers); recorded on both versions.
        from_version: Only roll back this champion; when it was already rolled back, do
            nothing (safe retries). Empty: roll back whatever is the champion.

    Returns:
        champion_version: The champion version after the rollback.
    """
    from components.registry import champion_outputs
    from components.rollback.core import rollback as roll_back

    out = roll_back(tracking_uri, reason, from_version=from_version)
    if out.changed:
        print(f"champion: v{out.rolled_back_from} -> v{out.version} (rollback: {reason})")
    else:
        print(f"v{out.rolled_back_from} was already rolled back to v{out.version}; nothing changed")
    return champion_outputs(out.version)
