"""A real daphne process serving the platform for tests: against the test database, with the given env."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper

SERVER_START_TIMEOUT_S = 30.0


@dataclass
class LiveServer:
    """A daphne process that may still be importing Django; `wait_until_serving` before use."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    is_serving: bool = False

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.is_serving:
            if self.process.poll() is not None:
                pytest.fail(f"daphne exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"daphne did not answer within {SERVER_START_TIMEOUT_S} s:\n{self.log_path.read_text()}")
            self.is_serving = answers_health_check(self.url)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_database_url(workdir: Path) -> str:
    """A DATABASE_URL naming the test database, for a server process that reads only the environment."""
    database = connections[DEFAULT_DB_ALIAS]
    if not isinstance(database, SQLiteDatabaseWrapper):
        # The test database is the configured one with the test name; keep user, host and options as set.
        return urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + database.settings_dict["NAME"]).geturl()
    if not database.is_in_memory_db():
        return f"sqlite:///{Path(database.settings_dict['NAME']).resolve()}"
    # Django's default SQLite test database lives in this process's memory, which no other process can
    # open. Copy it to a file for the server; the test reads nothing the server writes, so a copy suffices.
    snapshot = workdir / "server.sqlite3"
    database.ensure_connection()
    with closing(sqlite3.connect(snapshot)) as target:
        database.connection.backup(target)
    return f"sqlite:///{snapshot}"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers_health_check(url: str) -> bool:
    # The first request also imports the URL conf and every view, which takes seconds on a busy machine.
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:  # noqa: S310 (loopback URL)
            return bool(response.status == 200)
    except OSError:  # refused while daphne boots, or a timeout (urllib raises it bare, not as URLError)
        time.sleep(0.1)
        return False


def start_daphne(workdir: Path, **env: str) -> LiveServer:
    """Daphne serving `hftplatform.asgi:application` on loopback against the test database.

    Rows the test needs must be committed (and, on SQLite, created) before this is called.
    """
    port = free_loopback_port()
    log_path = workdir / f"daphne-{port}.log"
    environment = {**os.environ, "DATABASE_URL": server_database_url(workdir), "PYTHONUNBUFFERED": "1", **env}
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "hftplatform.asgi:application"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    return LiveServer(f"http://127.0.0.1:{port}", port, process, log_path)
