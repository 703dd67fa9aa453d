"""Move the `champion` alias to a version; the version records what it replaced and why."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from tagifai import tracking

NO_PREVIOUS = "none"


@dataclass(frozen=True)
class Promotion:
    version: str
    previous: str  # the champion before ("" when there was none)
    changed: bool  # False when the version already was the champion


def promote(tracking_uri: str, version: str, reason: str = "", name: str = tracking.MODEL_NAME) -> Promotion:
    """Make `version` the champion. Idempotent: promoting the champion again changes nothing."""
    version = str(version)
    client = tracking.client(tracking_uri)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ValueError(f"{name} v{version} does not exist in the registry at {tracking_uri}") from exc
    current = tracking.get_alias(tracking_uri, tracking.CHAMPION, name)
    previous = str(current.version) if current is not None else ""
    if previous == version:
        return Promotion(version, previous, changed=False)
    # Tags first, alias last: the alias move is the commit point, so a failure in between
    # leaves the old champion serving.
    tracking.set_version_tags(
        tracking_uri,
        version,
        {"promoted_from": previous or NO_PREVIOUS, "promotion_reason": reason or "promoted"},
        name=name,
    )
    tracking.set_alias(tracking_uri, version, tracking.CHAMPION, name)
    return Promotion(version, previous, changed=True)
