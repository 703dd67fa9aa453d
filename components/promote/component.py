"""KFP wrapper of the promote step (logic in ``components.promote.core``)."""

from typing import NamedTuple

from components.step import MLFLOW_CREDENTIALS, STORES, step_component


@step_component("promote", image="train", needs=(MLFLOW_CREDENTIALS, STORES))
def promote(
    version: str,
    tracking_uri: str,
    reason: str = "",
    compared_with: str = "any",
) -> NamedTuple("Outputs", [("champion_version", str)]):  # type: ignore[valid-type]
    """Make a model version of ``tagifai`` the champion (registry alias ``champion``).

    The version gets the tags ``promoted_from`` (the previous champion, or ``none``) and
    ``promotion_reason``. Idempotent: promoting the current champion again changes nothing.

    Args:
        version: Registered model version to promote (from train).
        tracking_uri: MLflow tracking (and registry) URI.
        reason: Why (e.g. the evaluate step's reason); recorded on the version.
        compared_with: The champion the version was evaluated against (evaluate's
            ``champion_version``; "" when there was none): if another run has moved the
            champion since, the task fails and nothing changes. ``any``: no such check.

    Returns:
        champion_version: The promoted version.
    """
    from components.promote.core import promote as promote_version
    from components.registry import champion_outputs

    out = promote_version(tracking_uri, version, reason, compared_with=compared_with)
    if out.changed:
        print(f"champion: v{out.previous or '-'} -> v{out.version} ({reason})")
    else:
        print(f"v{out.version} already is the champion; nothing changed")
    return champion_outputs(out.version)
