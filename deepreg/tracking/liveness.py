"""Finding plain runs whose process died (SIGKILL, out of memory, power loss) and marking them FAILED.

A run records who runs it as tags (`deepreg.host`, `deepreg.pid`, `deepreg.pid_start`: the process
start time from /proc, which tells a reused pid from the original). Every deepreg command that opens
a store (`ensure_experiment`) looks at the RUNNING runs of this host and marks those whose process
is gone as FAILED, with the reason. Runs of other hosts are left alone: their processes cannot be
seen from here. Sweeps track their trials' workers the same way (deepreg/sweeps/_liveness.py).
"""

from __future__ import annotations

import logging
import os
import socket

import mlflow
from mlflow.entities import RunStatus, ViewType

from deepreg._process import process_alive, process_start
from deepreg.tracking.tags import REASON_TAG, STATE_TAG

log = logging.getLogger(__name__)

HOST_TAG = "deepreg.host"
PID_TAG = "deepreg.pid"
START_TAG = "deepreg.pid_start"


def process_tags() -> dict[str, str]:
    """The tags that let a later command tell whether this process still runs the run."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), START_TAG: process_start(pid) or ""}


def death_reason(tags: dict[str, str]) -> str | None:
    """Why a RUNNING run of this host is dead, or None while its process may be alive."""
    if tags.get(HOST_TAG) != socket.gethostname() or not str(tags.get(PID_TAG, "")).isdigit():
        return None
    pid = int(tags[PID_TAG])
    if pid == os.getpid() or process_alive(pid, tags.get(START_TAG, "")):
        return None
    return (f"its process {tags[HOST_TAG]}:{pid} is gone (killed, out of memory or power loss); "
            "marked failed by a later deepreg command")


def reap_dead_runs(client: mlflow.MlflowClient) -> list[str]:
    """Mark FAILED every RUNNING run of this host whose process is gone; return their ids."""
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not experiments:
        return []
    host = socket.gethostname().replace("'", "")
    running = client.search_runs(experiments, filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
                                 max_results=1000)
    reaped = []
    for run in running:
        reason = death_reason(run.data.tags)
        if reason is None:
            continue
        client.log_batch(run.info.run_id, tags=[mlflow.entities.RunTag(STATE_TAG, "failed"),
                                                mlflow.entities.RunTag(REASON_TAG, reason)])
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        log.warning("run %s (%s) was still RUNNING but %s", run.info.run_id, run.info.run_name, reason)
        reaped.append(run.info.run_id)
    return reaped
