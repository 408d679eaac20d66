"""Whether a process recorded earlier (host, pid, start time) is still the one running (Linux /proc)."""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux); None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot, to tell a reused pid from the original."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def process_alive(pid: int, start: str) -> bool:
    """Whether `pid` still exists, is not a zombie and (when known) started when it was recorded."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc: a live pid is all that can be known
    return fields[0] != "Z" and (not start or len(fields) <= 19 or fields[19] == start)
