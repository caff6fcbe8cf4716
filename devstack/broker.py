"""Embedded MQTT broker for the laptop demo, the integration tests and the benchmarks.

`EmbeddedBroker` runs Mosquitto when installed, else an amqtt broker (the `demo` extra;
``python -m devstack.broker amqtt``), as a child process on 127.0.0.1 only. Mosquitto keeps
its state on disk, so a second `start()` on the same directory resumes; as root it is told
to stay root.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from devstack.logs import tail
from devstack.ports import port_is_free, remembered_port

__all__ = ["EmbeddedBroker", "find_mosquitto"]

log = logging.getLogger(__name__)

_MOSQUITTO_CANDIDATES = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary (Debian puts it in /usr/sbin, often not on PATH), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _MOSQUITTO_CANDIDATES if os.access(c, os.X_OK)), None)


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
            self._port = remembered_port(self.port_file, self._requested_port)
        port = self._port
        if not port_is_free(port):
            raise RuntimeError(f"port {port} on 127.0.0.1 is in use; the MQTT broker cannot listen")
        self.port_file.write_text(f"{port}\n")
        if self.kind == "mosquitto":
            assert self.mosquitto_path is not None
            self._write_mosquitto_config(port)
            args = [self.mosquitto_path, "-c", str(self.config_file)]
        else:
            args = [sys.executable, "-m", "devstack.broker", "amqtt", "--port", str(port)]
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
        parts = [f"--- {self.stdout_file} ---\n{tail(self.stdout_file)}"]
        if self.kind == "mosquitto":
            parts.append(f"--- {self.log_file} ---\n{tail(self.log_file)}")
        return "\n".join(parts)

    def _write_mosquitto_config(self, port: int) -> None:
        lines = [
            "# written by devstack.broker; regenerated at every start",
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
    parser = argparse.ArgumentParser(prog="python -m devstack.broker")
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
