"""Move the `champion` alias back to the version it replaced; both versions record why.

The version to go back to is :func:`components.registry.previous_version` (the one the
champion was promoted from). A first champion has none: rolling it back is an error, not a
silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.registry import previous_version, tags_of
from tagifai import tracking


class NoPreviousVersion(RuntimeError):
    """The champion has no previous version to roll back to."""


@dataclass(frozen=True)
class Rollback:
    version: str  # the champion now
    rolled_back_from: str  # the champion before
    reason: str
    changed: bool  # False: `from_version` was already rolled back (idempotent re-run)


def rollback(
    tracking_uri: str, reason: str, from_version: str = "", name: str = tracking.MODEL_NAME
) -> Rollback:
    """Make the champion's previous version the champion again.

    The new champion gets ``rolled_back_from`` (the demoted version) and
    ``rollback_reason``; the demoted version gets ``rolled_back_to`` and
    ``rollback_reason``. Tags first, alias last: the alias move is the commit point.

    With `from_version`, only that champion is rolled back: when the champion already is
    the version `from_version` was rolled back to, nothing changes (a retried task must not
    roll back twice).

    Raises:
        NoPreviousVersion: No champion, or nothing to go back to.
    """
    reason = reason or "rollback"
    champion = tracking.get_alias(tracking_uri, tracking.CHAMPION, name)
    if champion is None:
        raise NoPreviousVersion(f"{name} has no {tracking.CHAMPION} in the registry at {tracking_uri}")
    current = str(champion.version)
    if from_version and current != str(from_version):
        if tags_of(champion).get("rolled_back_from") == str(from_version):
            return Rollback(current, str(from_version), tags_of(champion).get("rollback_reason", ""), False)
        raise NoPreviousVersion(
            f"the {tracking.CHAMPION} is v{current}, not v{from_version}: refusing to roll back another version"
        )
    target = previous_version(tracking_uri, champion, name)
    if target is None:
        raise NoPreviousVersion(
            f"{name} v{current} has no previous version to roll back to "
            f"(promoted_from={tags_of(champion).get('promoted_from', 'unset')}, no lower version)"
        )
    tracking.set_version_tags(
        tracking_uri, target, {"rolled_back_from": current, "rollback_reason": reason}, name=name
    )
    tracking.set_version_tags(
        tracking_uri, current, {"rolled_back_to": target, "rollback_reason": reason}, name=name
    )
    tracking.set_alias(tracking_uri, target, tracking.CHAMPION, name)
    return Rollback(target, current, reason, True)
