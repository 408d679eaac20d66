"""Several worker processes on one study: a journal file (one worker SIGKILLed) and PostgreSQL.

The workers are real `deepreg` processes; the MLflow store is a SQLite file; PostgreSQL comes from
the `pgserver` wheel (Debian's package as a fallback) and is started on loopback for the session,
as an unprivileged user when the tests run as root (see `postgres_url`).
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from synthetic import write_compendium

from deepreg.sweeps import liveness, open_storage

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model": {"sequence": {"filters": [8], "filter_width": [7]}, "head": {"dense_units": [16, 16],
                                                                              "dropout": 0.1}},
        "training": {"block_genes": 16, "block_conditions": 8, "learning_rate": 0.003, "train_metrics_genes": 32}}


def write_spec(folder: Path, name: str, trials: int, epochs: int) -> Path:
    files = write_compendium(folder / "data", n_genes=80, n_conditions=12, length=60)
    data = {"bundle": None, "expression": str(files["expression"]), "promoters": str(files["promoters"]),
            "regulators": str(files["regulators"]), "sequence_length": 60, "cache_dir": str(folder / "cache")}
    spec = {"name": name, "data": data, "base": TINY, "epochs": epochs, "budget": {"trials": trials},
            "sampler": {"type": "random", "seed": 0}, "pruner": "none",
            "space": {"model.sequence.filter_width": [5, 7, 9, 11], "model.head.dropout": {"float": [0.0, 0.5]}},
            "reliability": {"heartbeat_seconds": 2, "stale_after_seconds": 30}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def deepreg(folder: Path, *args: str, log: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    handle = open(folder / log, "w")
    return subprocess.Popen([sys.executable, "-m", "deepreg.cli", *args], cwd=folder, env=env, stdout=handle,
                            stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, folder: Path, log: str, timeout: float = 400) -> str:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    text = (folder / log).read_text()
    assert process.returncode == 0, text[-3000:]
    return text


def child_runs(uri: str, parent_run_id: str) -> list:
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    return client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def check_no_duplicates(study: optuna.Study, uri: str, budget: int) -> dict:
    """Every trial trained at most once, and exactly `budget` trials count."""
    trials = study.get_trials()
    retried = liveness.retried_numbers(trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget and len([t for t in trials if t.number not in retried]) == budget
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    runs = child_runs(uri, study.user_attrs["deepreg.parent_run_id"])
    numbers = [int(r.data.tags["deepreg.trial_number"]) for r in runs]
    assert len(numbers) == len(set(numbers)), "a trial number was trained twice"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished = {int(r.data.tags["deepreg.trial_number"]) for r in runs if r.info.status == "FINISHED"}
    assert finished == {t.number for t in complete}
    return {int(r.data.tags["deepreg.trial_number"]): r for r in runs}


def test_journal_workers_share_a_study_and_a_sigkilled_workers_trial_is_retried(tmp_path):
    spec = write_spec(tmp_path, "shared", trials=4, epochs=4)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    url = f"journal:{tmp_path}/mlruns/optuna.journal"
    worker = deepreg(tmp_path, "worker", "--study", "shared", "--storage", url, "--wait", "300", log="worker.log")
    sweep = deepreg(tmp_path, "sweep", str(spec), "--storage", url, "--tracking-uri", uri, log="sweep.log")
    storage = None
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.2)
        if storage is None and Path(tmp_path / "mlruns" / "optuna.journal").exists():
            storage = open_storage(url).storage
        if storage is None:
            continue
        try:
            study = optuna.load_study(study_name="shared", storage=storage)
        except KeyError:
            continue
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if (trial.user_attrs.get(liveness.WORKER_ATTR) or {}).get("pid") == sweep.pid and \
                    trial.intermediate_values:
                victim = trial
    assert victim is not None, (tmp_path / "sweep.log").read_text()[-3000:]
    os.kill(sweep.pid, signal.SIGKILL)  # mid-trial: after its first epoch, before its last
    sweep.wait()
    text = finish(worker, tmp_path, "worker.log")

    study = optuna.load_study(study_name="shared", storage=open_storage(url).storage)
    dead = study.trials[victim.number]
    assert dead.state == TrialState.FAIL and "is gone" in dead.user_attrs[liveness.DEATH_ATTR]
    retries = [t for t in study.trials if t.user_attrs.get(liveness.RETRY_OF_ATTR) == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == dead.params
    runs = check_no_duplicates(study, uri, budget=4)
    assert runs[victim.number].info.status == "FAILED"  # the killed worker's run does not stay RUNNING
    assert "is gone" in runs[victim.number].data.tags["deepreg.reason"]
    assert f"trial {victim.number}: worker" in text and "queued again" in text
    pids = {t.user_attrs[liveness.WORKER_ATTR]["pid"] for t in study.trials}
    assert pids == {sweep.pid, worker.pid}
    parent = mlflow.MlflowClient(uri).get_run(study.user_attrs["deepreg.parent_run_id"])
    assert parent.info.status == "FINISHED"


# PostgreSQL ---------------------------------------------------------------------------------------
# The server's binaries come from the `pgserver` wheel (in the dev extra; no root needed), else from
# initdb/pg_ctl on PATH or Debian's /usr/lib/postgresql, else (as root only) Debian's postgresql
# package is installed. PostgreSQL refuses to run as root, so as root the server runs as an
# unprivileged user: `postgres` where it exists, else PG_USER, made with useradd. Either way it listens
# on 127.0.0.1 on a free port, with its data in a temporary folder, for the session.

PG_USER = "deepreg-pg"


def _postgres_bin() -> tuple[Path | None, str]:
    """The folder of initdb/pg_ctl/createdb, and where it came from."""
    try:
        import pgserver
    except ImportError:
        pgserver = None
    if pgserver is not None:
        return Path(pgserver.pg_config(["--bindir"]).strip()), "the pgserver wheel"
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent, "PATH"
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return (Path(versions[-1]).parent, "Debian's postgresql package") if versions else (None, "")


def _install_postgres() -> str:
    """Install Debian's postgresql package (the fallback without pgserver); return why not, or ''."""
    if os.geteuid() != 0:
        return "pgserver is not installed (pip install pgserver, in the dev extra) and installing postgresql needs root"
    if not shutil.which("apt-get"):
        return "pgserver is not installed (pip install pgserver, in the dev extra) and there is no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return f"'{' '.join(command)}' failed: {result.stderr.strip().splitlines()[-1:]}"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> str:
    """As root: the unprivileged user to run PostgreSQL as (made with useradd when missing); '' when none can be."""
    import pwd

    for name in ("postgres", PG_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    if not shutil.which("useradd"):
        return ""
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                          capture_output=True, text=True)
    return PG_USER if made.returncode == 0 else ""


def _reachable_bin(bin_dir: Path, user: str, folder: Path) -> Path | None:
    """`bin_dir` when `user` can run its programs; else (a venv under /root) a copy of the pgserver wheel's
    server in `folder`, whose binaries find their libraries at ../../../pgserver.libs, so both are copied."""
    if subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(bin_dir / "postgres")]).returncode == 0:
        return bin_dir
    site = bin_dir.parents[2]
    if not (site / "pgserver" / "pginstall").is_dir():
        return None
    for name in ("pgserver", "pgserver.libs"):
        if (site / name).is_dir():
            shutil.copytree(site / name, folder / name, symlinks=True)
    return folder / bin_dir.relative_to(site)


@pytest.fixture(scope="session")
def postgres_url():
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install psycopg2-binary, in the dev extra)")
    bin_dir, origin = _postgres_bin()
    if bin_dir is None:
        why = _install_postgres()
        bin_dir, origin = _postgres_bin()
        if bin_dir is None:
            pytest.skip(f"no PostgreSQL server here: {why or 'initdb not found after installing postgresql'}")
    folder = Path(tempfile.mkdtemp(prefix="deepreg-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root: run them as an unprivileged user
        user = _server_user() if shutil.which("runuser") else ""
        if not user:
            pytest.skip(f"running as root without runuser, or without a user other than root to run PostgreSQL as "
                        f"(useradd {PG_USER} failed)")
        shutil.chown(folder, user=user)
        bin_dir = _reachable_bin(bin_dir, user, folder)
        if bin_dir is None:
            pytest.skip(f"the PostgreSQL programs from {origin} are not readable by the user {user}")
        prefix = ["runuser", "-u", user, "--"]
    print(f"PostgreSQL from {origin}: {bin_dir}", file=sys.stderr)
    data, port = folder / "data", _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    result = run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    if result.returncode != 0:
        pytest.skip(f"initdb failed: {result.stderr.strip()[-500:]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    result = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w",
                 "start")
    if result.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {result.stderr.strip()[-500:]}")
    try:
        created = run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "deepreg")
        assert created.returncode == 0, created.stderr
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/deepreg"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_postgresql_storage_with_two_workers_and_optunas_heartbeat(postgres_url, tmp_path):
    import sqlalchemy

    spec = write_spec(tmp_path, "pg", trials=3, epochs=2)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    worker = deepreg(tmp_path, "worker", "--study", "pg", "--storage", postgres_url, "--wait", "300",
                     log="worker.log")
    sweep = deepreg(tmp_path, "sweep", str(spec), "--storage", postgres_url, "--tracking-uri", uri, log="sweep.log")
    finish(sweep, tmp_path, "sweep.log")
    finish(worker, tmp_path, "worker.log")
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    check_no_duplicates(study, uri, budget=3)
    pids = {t.user_attrs[liveness.WORKER_ATTR]["pid"] for t in study.trials}
    assert pids == {sweep.pid, worker.pid}, "both workers should have run trials"
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:  # Optuna's RDB heartbeat was on for these trials
        beats = connection.execute(sqlalchemy.text("select count(*) from trial_heartbeats")).scalar()
    engine.dispose()
    assert beats >= 3
