"""Where studies live: an Optuna storage from a URL (a journal file by default, next to the MLflow store).

- `journal:PATH` (or a path ending in `.journal`): Optuna's JournalStorage on a local file; no
  server, safe for several processes on one machine (or a shared file system with working locks).
  Dead workers are recognised by our own liveness scheme (`_liveness.py`).
- `sqlite:///...`, `postgresql+psycopg2://...`, `mysql+pymysql://...`: Optuna's RDBStorage with its
  heartbeat switched on, for workers on several machines.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import optuna

from deepreg.errors import DeepRegError

JOURNAL_PREFIX = "journal:"
DEFAULT_JOURNAL = "optuna.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "oracle", "mssql")


@dataclasses.dataclass(frozen=True)
class StorageInfo:
    """An opened storage and the URL that names it for other workers."""

    url: str
    storage: optuna.storages.BaseStorage
    kind: str  # "journal" or "rdb"


def default_storage_url(tracking_uri: str) -> str:
    """The journal file next to a local MLflow store (or under ./mlruns for a remote one)."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
    elif tracking_uri.startswith("file:"):
        folder = Path(tracking_uri.removeprefix("file://").removeprefix("file:"))
    else:
        folder = Path("mlruns")
    return JOURNAL_PREFIX + str((folder / DEFAULT_JOURNAL).resolve())


def journal_path(url: str) -> Path | None:
    if url.startswith(JOURNAL_PREFIX):
        text = url.removeprefix(JOURNAL_PREFIX)
        return Path(text[2:] if text.startswith("///") else text)
    if "://" not in url and url.endswith((".journal", ".log")):
        return Path(url)
    return None


def open_storage(url: str, *, heartbeat_seconds: int = 15, stale_after_seconds: int = 90,
                 stale_callback=None, must_exist: bool = False) -> StorageInfo:
    """Open the storage a URL names; RDB storages get Optuna's heartbeat and our stale-trial callback."""
    path = journal_path(url)
    if path is not None:
        path = path.resolve()
        if must_exist and not path.is_file():
            raise DeepRegError(f"--storage {url}: no journal file at {path} (run deepreg sweep first, "
                               "or give the storage the study was made in)")
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = JournalFileBackend(str(path))
        except OSError as error:
            raise DeepRegError(f"--storage {url}: cannot make the journal file {path} "
                               f"({error.strerror or error}); give a folder you can write to") from None
        return StorageInfo(url=JOURNAL_PREFIX + str(path), kind="journal", storage=JournalStorage(backend))
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise DeepRegError(f"--storage {url!r}: expected journal:PATH or a database URL "
                           "(sqlite:///file.db, postgresql+psycopg2://user@host/db, mysql+pymysql://...)")
    engine_kwargs = {"pool_pre_ping": True}
    if scheme == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = _open_rdb(url, engine_kwargs, heartbeat_seconds, stale_after_seconds, stale_callback)
        except ImportError as error:
            raise DeepRegError(f"--storage {url!r}: the database driver is not installed ({error})") from None
        except Exception as error:  # sqlalchemy errors: wrong host, credentials, database
            raise DeepRegError(f"--storage {_redact(url)}: cannot open the database ({type(error).__name__}: "
                               f"{str(error).splitlines()[0]})") from None
    return StorageInfo(url=url, storage=storage, kind="rdb")


def _redact(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def study_names(info: StorageInfo) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(info.storage, include_best_trial=False)]


def load_study(name: str, storage_url: str) -> optuna.Study:
    """An existing study by name, or a DeepRegError listing the studies the storage holds."""
    info = open_storage(storage_url, must_exist=True)
    try:
        return optuna.load_study(study_name=name, storage=info.storage)
    except KeyError:
        names = study_names(info)
        known = ", ".join(names) if names else "none"
        raise DeepRegError(f"study {name!r}: not in {_redact(info.url)} (studies there: {known})") from None


def _open_rdb(url, engine_kwargs, heartbeat_seconds, stale_after_seconds, stale_callback, attempts: int = 5):
    """Open an Optuna RDB storage; retried because workers that start together on an empty database
    race to create its tables and all but one get an integrity error."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds,
                grace_period=stale_after_seconds, heartbeat_stale_trial_callback=stale_callback)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
