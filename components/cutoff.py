"""The data cutoff of a run: a run "as of" time T sees only the rows created before T.

Two inputs can set it, in this order:

1. ``as_of`` — a pipeline parameter (manual runs, ``python -m pipelines backfill``);
2. ``scheduled_time`` — the run's scheduled time, which the cluster build of a pipeline
   wires from ``dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER``. KFP servers without
   support for that placeholder pass it through unexpanded (``{{$...}}``), Vertex has been
   seen to pass the Unix epoch, and ``kfp.local`` cannot run it at all: those mean
   "unknown" and the run sees every row (the note says so).

Both are ISO 8601 instants; a date alone means 00:00 of that day; a time without a zone
is UTC. The bound is exclusive, so a run scheduled at 03:00 sees exactly the rows created
before 03:00, and the run backfilled for that time sees the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

AS_OF = "as_of"
SCHEDULED_TIME = "scheduled_time"


class CutoffError(ValueError):
    """An ``as_of`` that is not a time, or a table that cannot be cut at one."""


def parse_instant(text: str, what: str = AS_OF) -> datetime:
    """``2026-11-01``, ``2026-11-01T03:00``, ``2026-11-01T03:00:00Z``, ... as an aware UTC datetime."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise CutoffError(
            f"{what}={text!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or 2026-11-01T03:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """The canonical text of an instant: ``2026-11-01T03:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Cutoff:
    """Rows created before ``at`` (None: every row), where it came from, and why."""

    at: datetime | None
    source: str  # "as_of" | "scheduled_time" | "" (none)
    note: str

    def metadata(self) -> dict[str, str]:
        return {
            "as_of": iso(self.at) if self.at else "",
            "as_of_source": self.source,
            "as_of_note": self.note,
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> Cutoff:
        """The cutoff that `metadata` recorded (e.g. on extract's dataset): its inverse, to the second.

        Metadata without the keys (a dataset no cutoff was recorded on) gives ``NO_CUTOFF``.

        Raises:
            CutoffError: ``as_of`` is recorded but is not a time.
        """
        text = str(meta.get(AS_OF) or "").strip()
        source = str(meta.get("as_of_source") or "")
        note = str(meta.get("as_of_note") or "")
        if not text:
            return cls(None, source, note) if (source or note) else NO_CUTOFF
        at = parse_instant(text, f"the recorded {AS_OF}")
        source = source or AS_OF
        return cls(at, source, note or f"{source} {iso(at)}: rows created before it")


NO_CUTOFF = Cutoff(None, "", "no cutoff: every row")


def _unresolved(text: str) -> bool:
    return text.startswith(("{{", "[["))


def resolve(as_of: str = "", scheduled_time: str = "") -> Cutoff:
    """The cutoff from a run's ``as_of`` parameter and its scheduled time.

    Raises:
        CutoffError: ``as_of`` is set but is not a time. (A scheduled time the server did not
            fill in is not an error: the run sees every row and the note says why.)
    """
    if as_of.strip():
        at = parse_instant(as_of, AS_OF)
        return Cutoff(at, AS_OF, f"as_of {iso(at)}: rows created before it")
    scheduled = scheduled_time.strip()
    if not scheduled:
        return NO_CUTOFF
    if _unresolved(scheduled):
        return Cutoff(None, "", f"scheduled time not filled in by this KFP server ({scheduled!r}): every row")
    try:
        at = parse_instant(scheduled, SCHEDULED_TIME)
    except CutoffError:
        return Cutoff(None, "", f"scheduled time {scheduled!r} is not a time: every row")
    if at.year <= 1970:
        return Cutoff(None, "", f"scheduled time {iso(at)} is the Unix epoch (not filled in): every row")
    return Cutoff(at, SCHEDULED_TIME, f"scheduled time {iso(at)}: rows created before it")


def created_times(values: pd.Series) -> pd.Series:
    """``created_on`` as naive UTC timestamps (NaT where a value is not a time)."""
    import pandas as pd

    times = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    return times.dt.tz_localize(None)


def apply(df: pd.DataFrame, cutoff: Cutoff, where: str = "the table") -> pd.DataFrame:
    """The rows of ``df`` created before the cutoff (all of them without one).

    Raises:
        CutoffError: With a cutoff, when ``created_on`` is missing or a value is not a time
            (the row could not be placed on either side), or when no row is left.
    """
    if cutoff.at is None:
        return df
    if "created_on" not in df.columns:
        raise CutoffError(f"{where} has no created_on column: it cannot be cut at {cutoff.source}")
    times = created_times(df["created_on"])
    unreadable = int(times.isna().sum())  # nulls and values that are not times
    if unreadable:
        raise CutoffError(
            f"{where}: {unreadable} row(s) have no readable created_on, so {cutoff.note} is undefined"
        )
    kept = df[(times < cutoff.at.replace(tzinfo=None)).to_numpy()]
    if kept.empty:
        first = times.min()
        raise CutoffError(
            f"{where} has no row created before {iso(cutoff.at)} ({cutoff.source}); its first row is from "
            f"{first:%Y-%m-%d %H:%M:%S}"
        )
    return kept.reset_index(drop=True)
