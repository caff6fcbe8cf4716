"""Clustered MQTT brokers from Debian packages, started here for tests and benchmarks:
NATS with JetStream's MQTT (``nats-server``) and RabbitMQ's MQTT plugin (``rabbitmq-server``),
each as N nodes on 127.0.0.1 in one directory, reached by one multi-node URL
(``mqtt://127.0.0.1:p1,127.0.0.1:p2,...``, `devices.mqtt_config`). Both speak MQTT 3.1.1
only in Debian 12 (nats-server 2.9, RabbitMQ 3.10: MQTT 5 arrived in RabbitMQ 3.13), so
`protocol` is ``3.1.1``. Anonymous clients are allowed: these are local test brokers.

`kill(i)` is ``kill -9`` of node i: what a broker node's crash looks like to clients.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class ClusterError(RuntimeError):
    """A broker cluster is not installed or did not start; the message says what to do."""


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ClusterError(f"a broker node exited ({proc.returncode}):\n{tail}")
        if time.monotonic() > deadline:
            raise ClusterError(f"a broker node did not open port {port} in {timeout_s:g} s")
        time.sleep(0.1)


def _accepts_mqtt(port: int) -> bool:
    """One MQTT 3.1.1 connection attempt to the node at `port`: CONNACK success or not."""
    accepted = threading.Event()

    def connected(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            accepted.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"eldercare-ready-{port}",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    client.on_connect = connected
    try:
        client.connect("127.0.0.1", port, keepalive=10)
        client.loop_start()
        accepted.wait(3)
    except OSError:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return accepted.is_set()


def _mqtt_ready(port: int, timeout_s: float) -> None:
    """Wait until the node at `port` accepts an MQTT session: a clustered node opens its port
    before it has a cluster to serve sessions from."""
    deadline = time.monotonic() + timeout_s
    while not _accepts_mqtt(port):
        if time.monotonic() > deadline:
            raise ClusterError(f"the broker node on port {port} refused MQTT for {timeout_s:g} s")
        time.sleep(0.3)


class _Ports:
    """Distinct free ports for one cluster: all held open until handed out, so no two of
    them are the same (free ports taken one at a time can repeat)."""

    def __init__(self, count: int) -> None:
        sockets = []
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        self._free = [sock.getsockname()[1] for sock in sockets]
        for sock in sockets:
            sock.close()

    def take(self, count: int) -> list[int]:
        taken, self._free = self._free[:count], self._free[count:]
        return taken


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class _Cluster:
    """N broker nodes as child processes; `url` names them all."""

    name = "broker"
    protocol: Literal["5", "3.1.1"] = "3.1.1"
    start_timeout_s = 60.0
    one_by_one = False
    """Start each node once the previous one serves MQTT (else all at once)."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self.directory = directory
        self.ports = _Ports(4 * nodes)
        self.mqtt_ports = self.ports.take(nodes)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * nodes

    @property
    def url(self) -> str:
        """Every node, the first first: the client fails over along this list."""
        return "mqtt://" + ",".join(f"127.0.0.1:{p}" for p in self.mqtt_ports)

    def node_url(self, i: int) -> str:
        """Node `i` alone."""
        return f"mqtt://127.0.0.1:{self.mqtt_ports[i]}"

    def _command(self, i: int) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        """Start every node and wait until each accepts MQTT connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for i in range(len(self.mqtt_ports)):
            command, env = self._command(i)
            log = self.directory / f"node{i}.log"
            with log.open("ab") as out:
                self.procs[i] = subprocess.Popen(
                    command, env={**os.environ, **env}, stdout=out, stderr=out
                )
            if self.one_by_one:
                self._ready(i)
        for i in range(len(self.mqtt_ports)):
            self._ready(i)

    def _ready(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        port = self.mqtt_ports[i]
        _wait_port(port, proc, self.directory / f"node{i}.log", self.start_timeout_s)
        _mqtt_ready(port, self.start_timeout_s)

    def kill(self, i: int) -> None:
        """``kill -9`` node `i` (its clients see the connection drop)."""
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        """Stop every node still running (SIGTERM, then SIGKILL after 20 s)."""
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class NatsCluster(_Cluster):
    """nats-server nodes with JetStream and the MQTT listener, routed into one cluster (3
    nodes: the MQTT sessions' streams are replicated and survive the loss of one)."""

    name = "nats"

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        super().__init__(directory, nodes)
        self.binary = shutil.which("nats-server")
        if self.binary is None:
            raise ClusterError(
                "nats-server is not installed: `apt-get install -y nats-server` (scripts/test"
                " does it as root)"
            )
        self.client_ports = self.ports.take(nodes)
        self.route_ports = self.ports.take(nodes)

    def _command(self, i: int) -> tuple[list[str], dict[str, str]]:
        store = self.directory / f"js{i}"
        lines = [
            f"server_name: n{i}",
            f"listen: 127.0.0.1:{self.client_ports[i]}",
            f'jetstream {{ store_dir: "{store}" }}',
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]} }}",
        ]
        if len(self.mqtt_ports) > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
            lines.append(
                f"cluster {{ name: eldercare, listen: 127.0.0.1:{self.route_ports[i]},"
                f" routes: [{routes}] }}"
            )
        conf = self.directory / f"n{i}.conf"
        conf.write_text("\n".join(lines) + "\n")
        assert self.binary is not None
        return [self.binary, "-c", str(conf)], {}


class RabbitCluster(_Cluster):
    """RabbitMQ nodes (``ec<i>-<port>@localhost``) with the MQTT plugin enabled, formed into one
    cluster by classic peer discovery; each MQTT session's queue is a quorum queue
    (``mqtt.durable_queue_type = quorum``), replicated on every node, so a session outlives
    the node it was on (3 nodes: the client-id registry and the queues keep a majority)."""

    name = "rabbitmq"
    start_timeout_s = 120.0
    # Started together, a node's MQTT client-id registry (a Raft cluster) could fail to join
    # the others' and refuse every MQTT client (seen here once in four starts).
    one_by_one = True

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        super().__init__(directory, nodes)
        if not RABBITMQ_SERVER.exists():
            raise ClusterError(
                "rabbitmq-server is not installed: `apt-get install -y rabbitmq-server`"
                " (scripts/test does it as root)"
            )
        self.amqp_ports = self.ports.take(nodes)
        self.dist_ports = self.ports.take(nodes)
        self.names = [f"ec{i}-{self.dist_ports[0]}@localhost" for i in range(nodes)]

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        cookie = self.directory / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(os.urandom(16).hex())
            cookie.chmod(0o400)
        # `rabbitmq-plugins enable rabbitmq_mqtt`, written for nodes that are not running yet.
        (self.directory / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        super().start()

    def _command(self, i: int) -> tuple[list[str], dict[str, str]]:
        node = self.directory / f"r{i}"
        node.mkdir(parents=True, exist_ok=True)
        peers = [f"cluster_formation.classic_config.nodes.{j + 1} = {name}"
                 for j, name in enumerate(self.names)]  # fmt: skip
        lines = [
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_ports[i]}",
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_ports[i]}",
            "mqtt.allow_anonymous = true",
            "mqtt.durable_queue_type = quorum",
            # Unacknowledged messages per subscriber (default 10): ingest acknowledges after
            # its commit, so 10 in flight capped it at ~300 readings/s (bench/brokers.py).
            "mqtt.prefetch = 2000",
            "loopback_users = none",
            "cluster_formation.peer_discovery_backend = classic_config",
            *peers,
        ]
        (node / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        env = {
            "HOME": str(self.directory),  # the shared Erlang cookie
            "RABBITMQ_NODENAME": self.names[i],
            "RABBITMQ_NODE_PORT": str(self.amqp_ports[i]),
            "RABBITMQ_DIST_PORT": str(self.dist_ports[i]),
            "RABBITMQ_CONFIG_FILE": str(node / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(node / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(node / "pid"),
            "ERL_CRASH_DUMP": str(node / "erl_crash.dump"),  # not in the caller's directory
        }
        return [str(RABBITMQ_SERVER)], env

    def _vm_pid(self, i: int) -> int | None:
        """Node `i`'s Erlang VM (the launcher script we started is its parent)."""
        try:
            return int((self.directory / f"r{i}" / "pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def kill(self, i: int) -> None:
        """``kill -9`` node `i`'s Erlang VM, then its launcher."""
        pid = self._vm_pid(i)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().kill(i)
        # Until its port is closed: the VM's helper (erl_child_setup) holds the listening
        # socket a moment longer than the VM lives.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            (pid is not None and _running(pid)) or _listening(self.mqtt_ports[i])
        ):
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the nodes, and kill a VM its launcher left running."""
        super().stop()
        for i in range(len(self.procs)):
            pid = self._vm_pid(i)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def make_cluster(kind: str, directory: Path, nodes: int = 3) -> NatsCluster | RabbitCluster:
    """A cluster of `kind` (``nats`` or ``rabbitmq``), not started."""
    if kind == "nats":
        return NatsCluster(directory, nodes)
    if kind == "rabbitmq":
        return RabbitCluster(directory, nodes)
    raise ValueError(f"unknown broker cluster {kind!r}: nats or rabbitmq")
