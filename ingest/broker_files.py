"""The broker's password file and ACL on disk, and telling Mosquitto to read them again.

Each file is written next to its final path and renamed over it (mode 0600), so the broker
never reads half a file; both are written before either is renamed. Mosquitto reads them
again on SIGHUP (to the pid in `pid_file`) or whatever `reload_command` does (e.g.
``systemctl reload mosquitto``, ``docker kill -s HUP broker``): no restart, no client
disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from devices.lifecycle import BrokerFiles


class BrokerSettings(BaseModel):
    """Where the broker's files are and how it is reloaded (``ELDERCARE_BROKER__*``).

    Without `password_file`, device changes are recorded in the registry only, and
    `eldercare broker sync` on the broker's host writes the files."""

    password_file: Path | None = Field(
        default=None, description="Mosquitto's password_file, regenerated at every change"
    )
    acl_file: Path | None = Field(default=None, description="Mosquitto's acl_file")
    pid_file: Path | None = Field(
        default=None, description="the broker's pid file: reloaded by SIGHUP to that pid"
    )
    reload_command: str | None = Field(
        default=None, description="or a command that reloads the broker (no shell)"
    )
    reload_timeout_s: float = Field(default=10.0, gt=0)
    install_check_s: float = Field(
        default=300.0,
        gt=0,
        description="a device installed (or replaced) must be heard within this long",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BrokerSettings:
        if (self.password_file is None) != (self.acl_file is None):
            raise ValueError("set both password_file and acl_file, or neither")
        if self.pid_file is not None and self.reload_command is not None:
            raise ValueError("set pid_file or reload_command, not both")
        return self

    @property
    def manages_files(self) -> bool:
        """Whether this process writes the broker's files."""
        return self.password_file is not None


class BrokerReloadError(Exception):
    """The files were written but the broker could not be told to read them."""


@dataclass(slots=True, frozen=True)
class SyncResult:
    """What a sync did: files written (False: not configured), the broker reloaded (False:
    no way to reload configured, or it failed: `error` says how)."""

    files_written: bool
    reloaded: bool
    error: str | None = None


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_files(settings: BrokerSettings, files: BrokerFiles) -> bool:
    """Write both files atomically (temp + rename, 0600); False when not configured."""
    if settings.password_file is None or settings.acl_file is None:
        return False
    pairs = ((settings.password_file, files.passwd), (settings.acl_file, files.acl))
    temps: list[Path] = []
    try:
        for path, text in pairs:
            tmp = _temp(path)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            temps.append(tmp)
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
        for path, _ in pairs:
            _temp(path).replace(path)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    return True


async def reload(settings: BrokerSettings) -> bool:
    """Tell the broker to read its files again; False when no way is configured. Raises
    `BrokerReloadError` saying what failed."""
    if settings.pid_file is not None:
        try:
            pid = int(settings.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError) as exc:
            raise BrokerReloadError(f"no broker pid in {settings.pid_file}: {exc}") from exc
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise BrokerReloadError(f"SIGHUP to broker pid {pid} failed: {exc}") from exc
        return True
    if settings.reload_command is not None:
        argv = shlex.split(settings.reload_command)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise BrokerReloadError(f"reload command {argv[0]!r} failed: {exc}") from exc
        try:
            async with asyncio.timeout(settings.reload_timeout_s):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BrokerReloadError(
                f"reload command did not finish in {settings.reload_timeout_s:g} s"
            ) from None
        if proc.returncode != 0:
            raise BrokerReloadError(
                f"reload command exited {proc.returncode}: {err.decode(errors='replace')[:300]}"
            )
        return True
    return False
