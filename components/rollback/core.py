"""Move the `champion` alias back to the version it replaced; both versions record why.

The version to go back to is the one the champion was promoted from (the ``promoted_from``
tag that `promote` writes). Without that tag (an alias set by hand), it is the highest
version below the champion that was itself a champion once (has ``promoted_from``), else
simply the highest version below. ``promoted_from = none`` means the champion was the
first one: there is nothing to go back to, and that is an error, not a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.promote.core import NO_PREVIOUS
from tagifai import tracking


class NoPreviousVersion(RuntimeError):
    """The champion has no previous version to roll back to."""


@dataclass(frozen=True)
class Rollback:
    version: str  # the champion now
    rolled_back_from: str  # the champion before
    reason: str
    changed: bool  # False: `from_version` was already rolled back (idempotent re-run)


def _tags(mv: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (getattr(mv, "tags", None) or {}).items()}


def previous_version(
    tracking_uri: str, champion: Any | None = None, name: str = tracking.MODEL_NAME
) -> str | None:
    """The version to roll back to from `champion` (default: the current champion), or None."""
    champion = champion if champion is not None else tracking.get_alias(tracking_uri, tracking.CHAMPION, name)
    if champion is None:
        return None
    current = int(champion.version)
    versions = {int(mv.version): mv for mv in tracking.list_versions(tracking_uri, name)}
    promoted_from = _tags(champion).get("promoted_from")
    if promoted_from is not None:
        if promoted_from == NO_PREVIOUS:
            return None
        if promoted_from.isdigit() and int(promoted_from) in versions and int(promoted_from) != current:
            return promoted_from
    below = sorted((v for v in versions if v < current), reverse=True)
    former = [v for v in below if "promoted_from" in _tags(versions[v])]
    pick = former[0] if former else below[0] if below else None
    return None if pick is None else str(pick)


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
        if _tags(champion).get("rolled_back_from") == str(from_version):
            return Rollback(current, str(from_version), _tags(champion).get("rollback_reason", ""), False)
        raise NoPreviousVersion(
            f"the {tracking.CHAMPION} is v{current}, not v{from_version}: refusing to roll back another version"
        )
    target = previous_version(tracking_uri, champion, name)
    if target is None:
        raise NoPreviousVersion(
            f"{name} v{current} has no previous version to roll back to "
            f"(promoted_from={_tags(champion).get('promoted_from', 'unset')}, no lower version)"
        )
    tracking.set_version_tags(
        tracking_uri, target, {"rolled_back_from": current, "rollback_reason": reason}, name=name
    )
    tracking.set_version_tags(
        tracking_uri, current, {"rolled_back_to": target, "rollback_reason": reason}, name=name
    )
    tracking.set_alias(tracking_uri, target, tracking.CHAMPION, name)
    return Rollback(target, current, reason, True)
