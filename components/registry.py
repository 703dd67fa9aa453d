"""The model registry as the steps read it: a version with what its training run recorded,
and the version a champion replaced.

``promote`` records on every champion the version it replaced (tag ``promoted_from``;
``none`` for the first champion); ``rollback`` and the monitor read it back through
:func:`previous_version`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tagifai import tracking

# `promoted_from` of the first champion: there is nothing to go back to.
NO_PREVIOUS = "none"


@dataclass(frozen=True)
class VersionInfo:
    """A registered version and what its training run recorded."""

    version: str
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    mv: Any = field(repr=False, default=None)

    def get(self, *keys: str) -> str | None:
        """The first of `keys` the run logged as a param or tag (a non-empty value), else None."""
        for key in keys:
            for src in (self.params, self.tags):
                if src.get(key) not in (None, ""):
                    return src[key]
        return None

    @property
    def baseline_f1(self) -> float | None:
        """F1 at training time: the run's exact ``test_f1`` metric, else the version tag."""
        if "test_f1" in self.metrics:
            return float(self.metrics["test_f1"])
        tag = self.tags.get("test_f1")
        try:
            return float(tag) if tag is not None else None
        except ValueError:
            return None


def version_info(tracking_uri: str, mv: Any) -> VersionInfo:
    """A registered version (an MLflow ``ModelVersion``) with its run's params, metrics and tags.

    The version's own tags win over its run's of the same name.
    """
    tags = tags_of(mv)
    run_id = str(mv.run_id or tags.get("run_id", ""))
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    if run_id:
        run = tracking.client(tracking_uri).get_run(run_id)
        params = {str(k): str(v) for k, v in run.data.params.items()}
        metrics = {str(k): float(v) for k, v in run.data.metrics.items()}
        tags = {**{str(k): str(v) for k, v in run.data.tags.items() if not k.startswith("mlflow.")}, **tags}
    return VersionInfo(str(mv.version), run_id, tags, params, metrics, mv)


def tags_of(mv: Any) -> dict[str, str]:
    """A model version's tags as text."""
    return {str(k): str(v) for k, v in (getattr(mv, "tags", None) or {}).items()}


def previous_version(
    tracking_uri: str, champion: Any | None = None, name: str = tracking.MODEL_NAME
) -> str | None:
    """The version to roll back to from `champion` (default: the current champion), or None.

    It is the version the champion was promoted from (its ``promoted_from`` tag). Without
    that tag (an alias set by hand), the highest version below the champion that was itself
    a champion once (has ``promoted_from``), else simply the highest version below.
    ``promoted_from = none``: the champion was the first one, there is nothing to go back to.
    """
    champion = champion if champion is not None else tracking.get_alias(tracking_uri, tracking.CHAMPION, name)
    if champion is None:
        return None
    current = int(champion.version)
    versions = {int(mv.version): mv for mv in tracking.list_versions(tracking_uri, name)}
    promoted_from = tags_of(champion).get("promoted_from")
    if promoted_from is not None:
        if promoted_from == NO_PREVIOUS:
            return None
        if promoted_from.isdigit() and int(promoted_from) in versions and int(promoted_from) != current:
            return promoted_from
    below = sorted((v for v in versions if v < current), reverse=True)
    former = [v for v in below if "promoted_from" in tags_of(versions[v])]
    pick = former[0] if former else below[0] if below else None
    return None if pick is None else str(pick)


def champion_outputs(version: str) -> Any:
    """What promote and rollback return: their ``champion_version`` output, as the NamedTuple
    KFP reads the outputs of a step from."""
    from collections import namedtuple

    return namedtuple("Outputs", ["champion_version"])(version)
