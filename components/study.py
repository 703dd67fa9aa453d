"""The Optuna study the optimize workers share and study_summary reads: its storage and its trials.

The storage is an RDB URL (a sqlite file locally, an RDB server or a sqlite file on a volume
on a cluster), given as is or as ``env:NAME`` (a mounted secret); its password never
appears in a message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import optuna

# Trials that count as done: completed or pruned (a failed trial does not).
FINISHED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
# sqlite allows one writer at a time: other processes wait up to this long for the lock.
SQLITE_BUSY_TIMEOUT_S = 60
SETUP_ATTEMPTS = 5

T = TypeVar("T")


def resolve_storage_url(storage: str) -> str:
    """The storage URL; ``env:NAME`` reads it from an environment variable (a mounted secret)."""
    if storage.startswith("env:"):
        name = storage[len("env:") :]
        value = os.environ.get(name, "")
        if not value:
            raise ValueError(f"Optuna storage: environment variable {name} is not set")
        storage = value
    if "://" not in storage:
        raise ValueError(
            f"Optuna storage {storage!r} is not an RDB URL: use sqlite:////abs/path/optuna.db or "
            "postgresql://... (an in-memory study cannot be shared between workers)"
        )
    return storage


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show the scheme only
        return url.split("://", 1)[0] + "://***"


def open_storage(storage: str) -> str | optuna.storages.BaseStorage:
    """An Optuna storage for the URL: sqlite gets a busy timeout; other RDB URLs pass through."""
    url = resolve_storage_url(storage)
    if not url.startswith("sqlite:"):
        return url
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    return retry_setup(
        lambda: optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        )
    )


def retry_setup(fn: Callable[[], T], errors: tuple[type[Exception], ...] = ()) -> T:
    """Run `fn`, retrying a few times on database errors (or `errors`).

    Workers start together: two may create the storage tables, the study or the MLflow
    experiment at the same moment, and the loser of that race sees "already exists"; the
    next attempt finds them.
    """
    from sqlalchemy.exc import SQLAlchemyError

    retried = errors or (SQLAlchemyError,)
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        try:
            return fn()
        except retried:
            if attempt == SETUP_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


class StorageUnavailable(RuntimeError):
    """The Optuna storage refused the connection (server down, wrong or missing password)."""


def storage_error(storage: str, exc: Exception) -> StorageUnavailable:
    """A clear error naming the storage (password hidden) and where its password comes from."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    url = redact(resolve_storage_url(storage))
    hint = ""
    if url.startswith("postgresql"):
        hint = (
            "; the URL names no password, so libpq reads PGPASSWORD (on a cluster: key PGPASSWORD "
            "of Secret optuna-storage-credentials)"
        )
    return StorageUnavailable(f"Optuna storage {url} cannot be opened: {reason}{hint}")
