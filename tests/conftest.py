from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = (ROOT.parent / "shared" / "data" / "madewithml").resolve()


# Where the `madewithml` source caches the lesson's dataset (as `--source madewithml` does).
DATA_CACHE = ROOT / "stores" / "cache"


@pytest.fixture(scope="session")
def madewithml_dir() -> Path:
    """The lesson's real dataset, never copied into the repository.

    Read in place from ``../shared/data/madewithml`` when it is there (CI puts it beside the
    clone); else from the ``madewithml`` source's cache under ``stores/cache/`` (downloaded
    once at a pinned, checksum-verified commit). Offline and without either, the tests that
    need it are skipped with one loud line — except under ``CI=true``, where they fail.
    """
    if (SHARED_DATA / "projects.csv").exists():
        return SHARED_DATA
    from tagifai.datasets import SourceUnavailable, fetch_madewithml

    try:
        folder = fetch_madewithml(DATA_CACHE)
    except SourceUnavailable as exc:
        message = f"THE LESSON'S DATASET IS NOT AVAILABLE: no {SHARED_DATA}, and {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        print(f"\n!!! {message}; tests that need it are SKIPPED !!!", file=sys.stderr)
        pytest.skip(message)
    labeled = folder / "labeled_projects.csv"
    if not labeled.exists():  # ../shared has it too: the projects joined with their tags
        import pandas as pd

        joined = pd.read_csv(folder / "projects.csv").merge(pd.read_csv(folder / "tags.csv"), on="id")
        joined.to_csv(folder / ".labeled_projects.csv.part", index=False)
        (folder / ".labeled_projects.csv.part").replace(labeled)
    return folder


# What makes a page load something from elsewhere: a URL in an attribute that fetches (src,
# href of a style sheet or script, ...) or in CSS (url(...), @import). A plain link to read
# elsewhere (<a href>) fetches nothing.
_FETCHED_URL = re.compile(
    r"""(?:<(?:script|img|iframe|link|source|video|audio|embed|object)\b[^>]*?\b(?:src|href|data|srcset)\s*=\s*["']?"""
    r"""|url\(\s*["']?|@import\s+(?:url\()?\s*["']?)\s*(?:https?:)?//[^\s"')>]*""",
    re.IGNORECASE,
)
SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'


def fetched_urls(page: str) -> list[str]:
    """The external resources a page would load when opened."""
    return [m.group(0) for m in _FETCHED_URL.finditer(page)]


@pytest.fixture(scope="session")
def self_contained() -> Callable[[str, bool], list[str]]:
    """``check(page, strict)``: the external URLs of an HTML page, [] when it is self-contained.

    Strict: any ``http(s)://`` outside an SVG namespace counts (our own reports name nothing
    elsewhere); else only what the page would fetch (a vendored page may link to its docs).
    """

    def check(page: str, strict: bool = True) -> list[str]:
        if strict:
            return re.findall(r"https?://[^\s\"'<>)]*", page.replace(SVG_NAMESPACE, ""))
        return fetched_urls(page)

    return check


LocalServer = Callable[[Any], str]


@pytest.fixture
def local_http_server() -> Iterator[LocalServer]:
    """Start HTTP stand-ins on 127.0.0.1 (for services that cannot run here): call it with a
    request handler class, get the server's base URL. Every server is stopped after the test."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(handler: Any) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        started.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- PostgreSQL

POSTGRES_INIT = ROOT / "manifests" / "base" / "postgres" / "initdb" / "10-kfp-mlops.sh"
POSTGRES_ADMIN = "kfp_admin"


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL server on loopback, set up by the manifests' init script:
    databases ``mlflow`` and ``optuna``, each owned by a login role of the same name.

    TCP connections need a password (scram-sha-256); URLs carry none, and ``env(role)`` gives
    the ``PGPASSWORD`` that libpq reads, as the pods get it from their Secret.
    """

    port: int
    socket_dir: Path
    passwords: dict[str, str]
    host: str = "127.0.0.1"

    def url(self, role: str) -> str:
        """The SQLAlchemy URL of the role's own database, without a password."""
        return f"postgresql://{role}@{self.host}:{self.port}/{role}"

    def env(self, role: str) -> dict[str, str]:
        return {"PGPASSWORD": self.passwords[role]}

    def query(self, role: str, sql: str) -> list[tuple[Any, ...]]:
        """Rows of `sql`, run as `role` on its database over TCP with its password."""
        import psycopg

        con = psycopg.connect(
            host=self.host, port=self.port, user=role, dbname=role, password=self.passwords[role]
        )
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            con.close()


def server_unavailable(what: str, reason: str) -> None:
    """Skip loudly, naming `what` was not run and why; under ``CI=true`` fail instead."""
    message = f"{what} TESTS NOT RUN: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    warnings.warn(message, stacklevel=2)
    print(f"\n!!! {message} !!!", file=sys.stderr)
    pytest.skip(message)


def _postgres_unavailable(reason: str) -> None:
    server_unavailable("POSTGRESQL", reason)


def _postgres_bin() -> Path | None:
    """The newest server of Debian's `postgresql` package (/usr/lib/postgresql/<major>/bin)."""
    found = [
        p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if (p.parent / "pg_ctl").exists()
    ]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Gives a free TCP port on 127.0.0.1, for a server a test starts."""
    return _free_port


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own for the test session, on 127.0.0.1 and a free port.

    initdb into a temporary folder, ``pg_ctl start`` (unix socket in that folder too, no
    fsync: the data is thrown away), the manifests' init script for the roles and
    databases, ``pg_ctl stop`` and the folder removed at the end.

    initdb and the server refuse to run as root, and the tests may (CI does). As root the
    server runs as the unprivileged ``postgres`` user that Debian's package creates
    (``runuser -u postgres --``; ``nobody`` if there is none), in a folder of its own under
    the system temp dir that it owns: pytest's tmp folders are private to root.

    Without the server binaries (``apt-get install -y postgresql``) the tests skip with one
    loud reason; under ``CI=true`` they fail (``.ci/run`` installs the package).
    """
    bindir = _postgres_bin()
    if bindir is None:
        _postgres_unavailable(
            "no PostgreSQL server under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)"
        )
        raise AssertionError("unreachable")
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = pwd.getpwnam("nobody")
        base = Path(tempfile.mkdtemp(prefix="kfp-mlops-pg-"))
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", account.pw_name, "--"]
    else:
        base = tmp_path_factory.mktemp("postgres")
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    port = _free_port()

    def run(*argv: str | Path, env: dict[str, str] | None = None) -> None:
        proc = subprocess.run(
            [*as_user, *map(str, argv)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
            cwd=base,
        )
        if proc.returncode != 0:
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{proc.stdout}{proc.stderr}{server_log}")

    run("mkdir", "-m", "0700", sockets)
    run(
        bindir / "initdb",
        "--pgdata",
        data,
        "--username",
        POSTGRES_ADMIN,
        "--auth-local=trust",  # the admin over the socket, for the init script
        "--auth-host=scram-sha-256",  # every TCP connection with a password
        "--encoding=UTF8",
        "--no-locale",
        "--no-sync",
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off"
    run(bindir / "pg_ctl", "--pgdata", data, "--log", log, "--wait", "--timeout=60", "-o", options, "start")
    try:
        passwords = {role: secrets.token_urlsafe(16) for role in ("mlflow", "optuna")}
        # A copy in the server's folder: the checkout may be private to root (a clone in
        # pytest's tmp folder is), and the script runs as the server's user.
        init = base / POSTGRES_INIT.name
        shutil.copyfile(POSTGRES_INIT, init)
        init.chmod(0o644)
        run(
            "/bin/sh",
            init,
            env={
                "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
                "POSTGRES_USER": POSTGRES_ADMIN,
                "PGHOST": str(sockets),
                "PGPORT": str(port),
                "MLFLOW_DB_PASSWORD": passwords["mlflow"],
                "OPTUNA_DB_PASSWORD": passwords["optuna"],
            },
        )
        yield PostgresServer(port=port, socket_dir=sockets, passwords=passwords)
    finally:
        run(bindir / "pg_ctl", "--pgdata", data, "--mode=fast", "--wait", "stop")
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- BigQuery emulator

BQEMULATOR_VENV = ROOT / ".venv-bqemulator"


@dataclass(frozen=True)
class BigQueryEmulator:
    """A running ``bqemulator`` (BigQuery's REST API on DuckDB) on loopback, for the session.

    Tests point our BigQuery code at it through ``env()`` (``BIGQUERY_EMULATOR_HOST``, which
    ``components.bigquery.bigquery_client`` honours), each in a project of its own
    (``project(name)``), so they share the server without seeing each other's tables.
    """

    endpoint: str
    log: Path

    def env(self) -> dict[str, str]:
        return {"BIGQUERY_EMULATOR_HOST": self.endpoint}

    def client(self, project: str) -> Any:
        """A google-cloud-bigquery client of `project` on the emulator (anonymous credentials)."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )


def _bqemulator_unavailable(reason: str) -> None:
    server_unavailable("BIGQUERY EMULATOR", reason)


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """``bqemulator start`` from ``.venv-bqemulator`` (``make install`` creates it, pinned by
    ``constraints-bqemulator.txt``) on 127.0.0.1 and free ports, in memory; stopped at the end.

    It runs with ``HOME=.venv-bqemulator/home``, where ``make install`` installed DuckDB's
    spatial extension from the ``duckdb-extension-spatial`` package: the emulator's start
    loads it and would otherwise download it. Its optional Avro extension is switched off
    (``BQEMU_ENABLE_FORMAT_EXTENSIONS=false``: another download). Nothing is installed here;
    without the venv the tests skip loudly, and under ``CI=true`` they fail.
    """
    import requests

    program = BQEMULATOR_VENV / "bin" / "bqemulator"
    home = BQEMULATOR_VENV / "home"
    if not program.exists() or not (home / ".duckdb").is_dir():
        _bqemulator_unavailable(f"{program} or its DuckDB extensions are missing (run make install)")
    log = tmp_path_factory.mktemp("bqemulator") / "bqemulator.log"
    rest, grpc = _free_port(), _free_port()
    env = {**os.environ, "HOME": str(home), "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
    env.pop("BIGQUERY_EMULATOR_HOST", None)
    argv = [str(program), "start", "--rest-port", str(rest), "--grpc-port", str(grpc)]
    argv += ["--ephemeral", "--log-format", "console", "--log-level", "warning"]
    endpoint = f"http://127.0.0.1:{rest}"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                _bqemulator_unavailable(
                    f"bqemulator exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
                )
            try:
                if requests.get(f"{endpoint}/bigquery/v2/projects", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                _bqemulator_unavailable(f"bqemulator did not answer within 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield BigQueryEmulator(endpoint=endpoint, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
