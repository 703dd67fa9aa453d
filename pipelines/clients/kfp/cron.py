"""Cron expressions and intervals, checked field by field before anything is sent."""

from __future__ import annotations

import re

from pipelines.clients.kfp.connection import UsageError

_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_SECONDS_FIELD = ("second", 0, 59, ())
_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}


def _check_value(token: str, spec: tuple[str, int, int, tuple[str, ...]], expr: str) -> int:
    name, low, high, names = spec
    if token.upper() in names:
        return names.index(token.upper()) + low
    if not token.isdigit():
        raise UsageError(f"cron {name} field: {token!r} is not a number in {expr!r}")
    value = int(token)
    if not low <= value <= high:
        raise UsageError(f"cron {name} field: {value} is out of range {low}-{high} in {expr!r}")
    return value


def _check_field(text: str, spec: tuple[str, int, int, tuple[str, ...]], expr: str) -> None:
    name = spec[0]
    for part in text.split(","):
        if not part:
            raise UsageError(f"cron {name} field: empty list item in {expr!r}")
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise UsageError(f"cron {name} field: step {step!r} must be a positive number in {expr!r}")
        if base in ("*", "?"):
            if base == "?" and name not in ("day of month", "day of week"):
                raise UsageError(f"cron {name} field: '?' is only allowed for day of month/week in {expr!r}")
            continue
        lo, dash, hi = base.partition("-")
        start = _check_value(lo, spec, expr)
        if dash and _check_value(hi, spec, expr) < start:
            raise UsageError(f"cron {name} field: range {base!r} runs backwards in {expr!r}")


def to_kfp_cron(expr: str) -> str:
    """A cron expression in KFP's 6-field form (seconds first).

    Accepts the standard 5 fields (``"0 3 * * *"`` -> ``"0 0 3 * * *"``), 6 fields
    (already with seconds), or a descriptor such as ``@daily``. Raises UsageError
    naming the bad field.
    """
    text = " ".join(expr.split())
    if text.lower() in _DESCRIPTORS:
        return _DESCRIPTORS[text.lower()]
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        specs = _CRON_FIELDS
        fields = ["0", *fields]
    elif len(fields) == 6:
        specs = _CRON_FIELDS
    else:
        raise UsageError(
            f"cron expression {expr!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *' for 03:00 every day"
        )
    _check_field(fields[0], _SECONDS_FIELD, expr)
    for text_field, spec in zip(fields[1:], specs, strict=True):
        _check_field(text_field, spec, expr)
    return " ".join(fields)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> int:
    """``"6h"``, ``"30m"``, ``"1d"``, ``"1h30m"`` or plain seconds -> seconds."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        parts = re.findall(r"(\d+)([smhd])", value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise UsageError(f"interval {text!r}: use a number with a unit, e.g. 30m, 6h, 1d, 1h30m")
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"interval {text!r} must be longer than zero")
    return seconds
