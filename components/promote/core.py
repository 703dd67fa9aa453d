"""Move the `champion` alias to a version; the version records what it replaced and why."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from components.registry import NO_PREVIOUS
from tagifai import tracking

# `compared_with` value that skips the check: promote over whatever the champion is now.
ANY_CHAMPION = "any"


class ChampionChanged(RuntimeError):
    """The champion moved since the candidate was compared with it; nothing was promoted."""


@dataclass(frozen=True)
class Promotion:
    version: str
    previous: str  # the champion before ("" when there was none)
    changed: bool  # False when the version already was the champion


def promote(
    tracking_uri: str,
    version: str,
    reason: str = "",
    name: str = tracking.MODEL_NAME,
    compared_with: str = ANY_CHAMPION,
) -> Promotion:
    """Make `version` the champion. Idempotent: promoting the champion again changes nothing.

    Args:
        tracking_uri: MLflow tracking (and registry) URI.
        version: The version to promote.
        reason: Why; recorded on the version.
        name: The registered model.
        compared_with: The champion the gate compared `version` with ("" when there was
            none), or ``"any"``. Another run may have crowned a better model since; the gate's
            verdict holds only against the champion it saw, so a moved champion is not replaced.

    Raises:
        ChampionChanged: The champion is no longer the one `version` was compared with.
        ValueError: `version` is not in the registry.
    """
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
    if compared_with != ANY_CHAMPION and previous != str(compared_with):
        raise ChampionChanged(
            f"{name} v{version} was compared with champion {_label(compared_with)}, but the champion is "
            f"now {_label(previous)} (another run promoted it): not promoted; run again to compare with it"
        )
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


def _label(version: str) -> str:
    return f"v{version}" if version else "none"
