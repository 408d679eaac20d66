"""Telling a dead worker's trial from a live one, and retrying it exactly once.

Optuna's heartbeat works only on RDB storages. For every storage we record on each running trial
who runs it (`deepreg.worker`: host, pid, the process start time from /proc, a random worker id);
on a journal file we also beat our own heartbeat (`deepreg.heartbeat`, a Unix time, every
`heartbeat_seconds`). Before each trial every worker reaps the study's RUNNING trials:

- same host: the trial is dead when its pid no longer exists, is a zombie, or now belongs to a
  process started at another time (pid reuse). A live pid is live, however old its heartbeat.
- another host, journal storage: dead when its heartbeat (or its start, before the first beat) is
  older than `stale_after_seconds`. Clocks of the hosts must agree to well within that.
- another host, RDB storage: Optuna's own heartbeat decides (`fail_stale_trials`, run by Optuna
  before each trial) and calls `on_stale` below.

A dead trial is set to FAIL through the storage, which accepts that change once (a second reaper
gets UpdateFinishedTrialError and stops), so only the winner re-creates the trial: a WAITING copy
with the same params and distributions (grid position included) and `deepreg.retry_of` naming the
trial it replaces. Its MLflow run, still RUNNING, is marked FAILED with the reason. A trial is
retried at most `max_retries` times.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from deepreg._process import process_alive, process_start

log = logging.getLogger(__name__)

WORKER_ATTR = "deepreg.worker"
HEARTBEAT_ATTR = "deepreg.heartbeat"
RETRY_OF_ATTR = "deepreg.retry_of"
ORIGINAL_ATTR = "deepreg.original_trial"
ATTEMPT_ATTR = "deepreg.attempt"
RETRY_REASON_ATTR = "deepreg.retry_reason"
DEATH_ATTR = "deepreg.death"
_WORKER_ID = uuid.uuid4().hex[:12]


def identity() -> dict:
    """Who runs a trial: recorded on the trial when it starts."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": process_start(pid), "worker": _WORKER_ID}


def verdict(trial: FrozenTrial, *, journal: bool, stale_after: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial is dead, or None while it may be alive."""
    now = time.time() if now is None else now
    who = trial.user_attrs.get(WORKER_ATTR) or {}
    if who.get("host") == socket.gethostname() and isinstance(who.get("pid"), int):
        if who["pid"] == os.getpid() and who.get("worker") == _WORKER_ID:
            return None  # this process; it reaps only between its own trials
        if process_alive(who["pid"], who.get("start") or ""):
            return None
        return f"worker {who['host']}:{who['pid']} is gone"
    if not journal:
        return None
    last = trial.user_attrs.get(HEARTBEAT_ATTR)
    if not isinstance(last, (int, float)):
        last = trial.datetime_start.timestamp() if trial.datetime_start else now
    if now - last > stale_after:
        where = f"worker {who.get('host')}:{who.get('pid')}" if who else "its worker"
        return f"no heartbeat from {where} for {now - last:.0f} s"
    return None


class Heartbeat:
    """Beat `deepreg.heartbeat` on a running trial every `seconds` from a thread, while the trial runs.

    Through `Trial.set_user_attr`, which the journal storage serialises under its own lock; the key
    is set before the thread starts, so the beat only replaces a value.
    """

    def __init__(self, trial: optuna.Trial, seconds: float):
        self.trial, self.seconds = trial, seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deepreg-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())
            except UpdateFinishedTrialError:
                self.lost = True  # another worker declared this trial dead; its retry runs elsewhere
                log.warning("trial %d was declared dead by another worker", self.trial.number)
                return
            except Exception as error:  # a storage hiccup must not kill the trial
                log.warning("heartbeat failed: %s", error)


def reap(study: optuna.Study, storage: optuna.storages.BaseStorage, *, journal: bool, stale_after: float,
         max_retries: int, on_dead: Callable[[optuna.Study, FrozenTrial, str], None] | None = None) -> list[int]:
    """Fail and retry every dead RUNNING trial of the study (kept in `storage`); return the numbers this call won."""
    won = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = verdict(trial, journal=journal, stale_after=stale_after)
        if reason is None:
            continue
        if fail_and_retry(study, storage, trial, reason, max_retries=max_retries, on_dead=on_dead):
            won.append(trial.number)
    return won


def fail_and_retry(study: optuna.Study, storage: optuna.storages.BaseStorage, trial: FrozenTrial, reason: str, *,
                   max_retries: int, on_dead: Callable[[optuna.Study, FrozenTrial, str], None] | None = None) -> bool:
    """Set a running trial to FAIL and, if this call made that change, enqueue its retry.

    Through the storage's public methods, as Optuna's own `fail_stale_trials` does: `Study.tell`
    would also run the sampler's `after_trial` for a trial this process never ran, and a `Study`
    keeps its storage private, so the caller passes the storage it opened the study with.
    """
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                               trial.number)
    try:
        storage.set_trial_user_attr(trial_id, DEATH_ATTR, reason)
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False  # finished meanwhile, or another worker reaped it first
    log.info("trial %d: %s; marked failed", trial.number, reason)
    retry(study, storage.get_trial(trial_id), reason, max_retries=max_retries)
    if on_dead is not None:
        on_dead(study, trial, reason)
    return True


def retry(study: optuna.Study, trial: FrozenTrial, reason: str, *, max_retries: int) -> int | None:
    """Queue a WAITING copy of a failed trial (same params and grid position); None past max_retries."""
    attempt = int(trial.user_attrs.get(ATTEMPT_ATTR, 1))
    if attempt > max_retries:
        log.warning("trial %d: not retried again (%d attempts)", trial.number, attempt)
        return None
    original = int(trial.user_attrs.get(ORIGINAL_ATTR, trial.number))
    user_attrs = {key: value for key, value in trial.user_attrs.items() if not key.startswith("deepreg.")
                  or key in ("deepreg.baseline", "deepreg.enqueued_as")}
    user_attrs.update({RETRY_OF_ATTR: trial.number, ORIGINAL_ATTR: original, ATTEMPT_ATTR: attempt + 1,
                       RETRY_REASON_ATTR: reason})
    system_attrs = {k: v for k, v in trial.system_attrs.items() if k in ("grid_id", "search_space", "fixed_params")}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=trial.params,
                                              distributions=trial.distributions, user_attrs=user_attrs,
                                              system_attrs=system_attrs))
    return attempt + 1


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials that a later trial retries (they do not count against the budget)."""
    return {t.user_attrs[RETRY_OF_ATTR] for t in trials if isinstance(t.user_attrs.get(RETRY_OF_ATTR), int)}
