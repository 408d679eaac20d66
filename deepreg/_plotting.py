"""Matplotlib for figures written to files, with the backend chosen in one place.

Every figure DeepREG draws is saved (PNG artifacts, report images), never shown, so the
non-interactive Agg backend is selected, once, on the first call; a backend the user chose with
`MPLBACKEND` is left as it is.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def pyplot():
    """`matplotlib.pyplot`, with the Agg backend unless `MPLBACKEND` names one."""
    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
