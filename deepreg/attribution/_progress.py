"""A progress bar for the long steps of the attribution stage (tqdm on stderr, as the demo's study bar).

`disable=None` shows it on a terminal only: in a log the stage's own lines say what it is doing.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress_bar(description: str, unit: str):
    """Yield a `progress(done, total)` callback that moves a bar (closed on exit)."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=description, unit=unit, leave=False, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()
