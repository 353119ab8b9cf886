"""The gateway's state directory: node id and the last-known-good snapshot (contracts/gateway.md §2.3).

The snapshot holds session secrets: it is written with mode 0600, atomically (temp file, fsync, rename,
fsync of the directory), so a crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["CONFIG_FILE", "node_id", "read_last_known_good", "write_atomic"]

CONFIG_FILE = "config.json"


def node_id(state_dir: Path) -> str:
    """The node's uuid, created on first use and kept in `<state-dir>/node-id`."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / "node-id"
    try:
        value = path.read_text().strip()
        return str(uuid.UUID(value))
    except (OSError, ValueError):
        value = str(uuid.uuid4())
        write_atomic(path, value.encode())
        return value


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` (mode 0600) so that readers see the old or the new content only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_last_known_good(state_dir: Path) -> bytes | None:
    """The last snapshot written, or None."""
    try:
        return (state_dir / CONFIG_FILE).read_bytes()
    except FileNotFoundError:
        return None
