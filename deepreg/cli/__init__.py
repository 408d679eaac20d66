"""The `deepreg` command: a thin layer over the stages.

Subcommands live in the private modules of this package (`_train.py`, `_demo.py`, ...); each
exposes `register(subparsers)` and is found automatically. A `DeepRegError` becomes one line on
stderr and exit status 2, and so does a full disk (ENOSPC). SIGTERM is handled as Ctrl-C is (a run
in progress is marked KILLED with what it has logged), exit status 143.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from deepreg import __version__
from deepreg._files import disk_full_cause
from deepreg._quiet import import_keras_quietly
from deepreg._signals import Terminated, stop_on_sigterm
from deepreg.errors import DeepRegError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepreg", description="Learn gene regulation from promoter sequence (cis) and regulator expression (trans).")
    parser.add_argument("--version", action="version", version=f"deepreg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library log messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_") and not module.name.startswith("__"):
            command_module = importlib.import_module(f"{__name__}.{module.name}")
            if hasattr(command_module, "register"):
                command_module.register(subparsers)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if not verbose else "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna", "absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


# A dead tracking server must fail in seconds, not after MLflow's default of 7 retries with doubling
# waits and 120 s per request; the user's own environment settings win.
MLFLOW_HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                      "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _bound_tracking_retries() -> None:
    for name, value in MLFLOW_HTTP_LIMITS.items():
        os.environ.setdefault(name, value)


def _disk_full_message(error: OSError) -> str:
    where = f" writing {error.filename}" if error.filename else ""
    return f"no space left on device{where}; free some space (or point data.cache_dir / --tracking-uri elsewhere)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _quiet_libraries(args.verbose)
    if not args.verbose:
        import_keras_quietly()
    _bound_tracking_retries()
    stop_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except DeepRegError as error:
        print(f"deepreg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"deepreg {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"deepreg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        full = disk_full_cause(error)
        if full is None:
            raise
        print(f"deepreg {args.command}: error: {_disk_full_message(full)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
