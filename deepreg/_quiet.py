"""Import Keras (and its TensorFlow backend) without TensorFlow's C++ start-up banner.

On CPUs with AVX-512, TensorFlow 2.21 prints "oneDNN custom operations are on" through absl before
absl's logging is initialised, so `TF_CPP_MIN_LOG_LEVEL` does not silence it, and every command's
one-line error arrives after two lines of noise. The import runs with file descriptor 2 sent to a
temporary file; afterwards every captured line that is not a known banner line is written back to
stderr, so a real import problem is still seen.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

BANNER = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on",
          "This TensorFlow binary is optimized", "To enable the following instructions",
          "rebuild TensorFlow with the appropriate compiler flags")


def import_keras_quietly() -> None:
    """Import `keras` (its backend with it), dropping the banner lines printed on the way."""
    if "keras" in sys.modules:
        return
    with _captured_stderr() as captured:
        import keras  # noqa: F401
    for line in captured():
        if line.strip() and not any(marker in line for marker in BANNER):
            sys.stderr.write(line + "\n")


@contextlib.contextmanager
def _captured_stderr():
    """File descriptor 2 goes to a temporary file inside; yields a function returning its lines."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to keep clean
        yield lambda: lines
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())
