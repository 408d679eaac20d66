"""SIGTERM, as `timeout`, SLURM and Kubernetes send it, handled the way Ctrl-C is.

The handler raises `Terminated`, a `KeyboardInterrupt`, so every place that already cleans up after
Ctrl-C (a run marked KILLED with its curves, a sweep trial re-queued) does the same for SIGTERM, and
can still tell the two apart for the reason it records.
"""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated("terminated (SIGTERM)")


def stop_on_sigterm() -> None:
    """Turn SIGTERM into `Terminated` in the main thread (elsewhere Python cannot install handlers)."""
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        pass


def interruption_reason(interrupt: KeyboardInterrupt) -> str:
    return "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted (Ctrl-C)"
