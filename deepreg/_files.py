"""Writing files so that no partial output ever sits under a final name.

A file is written to a partial name in its own folder (`.partial-<pid>@<host>~<token>~<name>`),
synced, checked against the bytes meant for it, and renamed over the final name, so a reader sees
the old file or the complete new one. A full disk or any other write error removes the partial file
and becomes one `WriteFailed` line naming the file. A writer killed mid-write (SIGKILL, power) leaves
its partial file behind; `remove_stale_partials` deletes those of dead processes of this host, and
any older than `STALE_SECONDS` (other hosts sharing the folder, or names from older versions).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import socket
import time
from pathlib import Path

from deepreg._process import process_alive
from deepreg.errors import DeepRegError

log = logging.getLogger(__name__)

PARTIAL_PREFIX = ".partial-"
PARTIAL_NAME = re.compile(r"^\.partial-(?P<pid>\d+)@(?P<host>[^~]*)~")
STALE_SECONDS = 6 * 3600


class WriteFailed(DeepRegError):
    """A file could not be written completely; nothing was left under its name."""


def partial_path(path: Path) -> Path:
    """A fresh partial name beside `path`, naming the writing process so that a later run can tell
    whether the writer is still alive."""
    return path.parent / f"{PARTIAL_PREFIX}{os.getpid()}@{_host()}~{secrets.token_hex(4)}~{path.name}"


def describe_os_error(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    if error.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return error.strerror or str(error)


def write_bytes_atomically(path: str | Path, data: bytes, what: str = "file") -> Path:
    """Write `data` to `path` through a checked partial file; `WriteFailed` names the file and why."""
    path = Path(path)
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(path)
        _write_synced(partial, data)
        written = partial.stat().st_size
        if written != len(data):
            raise WriteFailed(f"{path}: the {what} came out {written:,} bytes instead of {len(data):,}; not kept")
        os.replace(partial, path)
        partial = None
    except OSError as error:
        raise WriteFailed(f"{path}: cannot write the {what} ({describe_os_error(error)}); nothing was kept") from None
    finally:
        if partial is not None:
            _remove_quietly(partial)
    return path


def _write_synced(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def remove_stale_partials(folder: str | Path, now: float | None = None) -> list[Path]:
    """Delete the partial files in `folder` that no live writer will finish; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    removed = [candidate for candidate in folder.glob(f"{PARTIAL_PREFIX}*") if _is_stale(candidate, now)]
    for candidate in removed:
        _remove_quietly(candidate)
    if removed:
        log.warning("removed %d unfinished file(s) left in %s by interrupted writers", len(removed), folder)
    return removed


def _is_stale(candidate: Path, now: float) -> bool:
    """Written by a dead process of this host, or (writer unknown or elsewhere) untouched for hours."""
    match = PARTIAL_NAME.match(candidate.name)
    if match and match["host"] == _host():
        pid = int(match["pid"])
        return pid != os.getpid() and not process_alive(pid, "")
    try:
        return now - candidate.stat().st_mtime > STALE_SECONDS
    except OSError:
        return False


def _host() -> str:
    return socket.gethostname().replace("~", "-")


def disk_full_cause(error: BaseException) -> OSError | None:
    """The ENOSPC OSError behind an exception, itself or anywhere in its cause/context chain (MLflow,
    h5py and SQLAlchemy wrap the OS error in their own exceptions)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return error
        if "No space left on device" in str(error):
            return OSError(errno.ENOSPC, "No space left on device")
        error = error.__cause__ or error.__context__
    return None
