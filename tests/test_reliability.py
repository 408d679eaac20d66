"""Nothing lost, nothing left RUNNING, one clear line for every bad input (issue 14).

Real files, a real MLflow SQLite store, real signals; a full disk is a real tmpfs where the test may
mount one, else ENOSPC injected at the OS write call.
"""

import errno
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import mlflow
import numpy as np
import pytest

from deepreg.cli import MLFLOW_HTTP_LIMITS, main
from deepreg.data.dataset import load_dataset
from deepreg.data.readers import read_expression

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_NOISE = ("WARNING: All log messages before absl", "I0000", "W0000", "E0000")
TINY_MODEL = "model:\n  sequence: {filters: [4], filter_width: [5]}\n  head: {dense_units: [8], dropout: 0.1}\n"
ONE_EPOCH = "training: {epochs: 1, block_genes: 32, block_conditions: 16}\n"


def run_yaml(files: dict, *, data: str = "", model: str = TINY_MODEL, training: str = ONE_EPOCH, **paths) -> str:
    chosen = {key: paths.get(key) or files[key] for key in ("expression", "promoters", "regulators")}
    return ("data:\n  bundle: null\n" + "".join(f"  {key}: {value}\n" for key, value in chosen.items())
            + "  sequence_length: 60\n" + data + model + training)


def edited_expression(files: dict, folder: Path, name: str, edit) -> Path:
    """A copy of the compendium's PCL with `edit(lines)` applied."""
    lines = Path(files["expression"]).read_text().splitlines()
    path = folder / name
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def set_cell(lines: list[str], line: int, column: int, text: str) -> list[str]:
    """Replace the cell at 1-based `line` and `column` of a tab-separated file."""
    cells = lines[line - 1].split("\t")
    cells[column - 1] = text
    return [*lines[:line - 1], "\t".join(cells), *lines[line:]]


def truncated_gzip(files, folder):
    raw = gzip.compress(Path(files["expression"]).read_bytes())
    (folder / "e.pcl.gz").write_bytes(raw[:len(raw) // 2])
    return run_yaml(files, expression=folder / "e.pcl.gz"), ()


def non_utf8_header(files, folder):
    text = Path(files["expression"]).read_text().replace("condition 3", "condition \xff3")
    (folder / "e.pcl").write_bytes(text.encode("latin-1"))
    return run_yaml(files, expression=folder / "e.pcl"), ()


def header_only(files, folder):
    return run_yaml(files, expression=edited_expression(files, folder, "e.pcl", lambda lines: lines[:1])), ()


def bad_cell(text):
    def case(files, folder):
        path = edited_expression(files, folder, "e.pcl", lambda lines: set_cell(lines, 6, 5, text))
        return run_yaml(files, expression=path), ()
    return case


def semicolons(files, folder):
    path = edited_expression(files, folder, "e.csv", lambda lines: [line.replace("\t", ";") for line in lines])
    return run_yaml(files, expression=path), ()


def model_section(text):
    return lambda files, folder: (run_yaml(files, model=text), ())


def data_section(text):
    return lambda files, folder: (run_yaml(files, data=text), ())


def training_section(text):
    return lambda files, folder: (run_yaml(files, training=text), ())


def tracking_uri(make_uri):
    return lambda files, folder: (run_yaml(files), ("--tracking-uri", make_uri(folder)))


def under_a_file(folder):
    (folder / "a-file").write_text("not a folder\n")
    return f"sqlite:///{folder}/a-file/mlflow.db"


BAD_INPUTS = {
    "truncated gzip": (truncated_gzip, ["e.pcl.gz", "truncated or corrupt gzip"]),
    "non-UTF-8 header": (non_utf8_header, ["e.pcl", "line 1", "not UTF-8"]),
    "header only": (header_only, ["e.pcl", "line 2", "no gene rows"]),
    "inf cell": (bad_cell("inf"), ["e.pcl", "line 6, condition 'condition 1'", "finite", "column 5", "'inf'"]),
    "-Infinity cell": (bad_cell("-Infinity"), ["e.pcl", "line 6, condition 'condition 1'", "'-Infinity'"]),
    "1e308 cell": (bad_cell("1e308"), ["e.pcl", "line 6, condition 'condition 1'", "'1e308'"]),
    "semicolon-separated": (semicolons, ["e.csv", "line 1", "semicolons"]),
    "activation typo": (model_section("model:\n  sequence: {filters: [4], filter_width: [5], activation: relux}\n"
                                      "  head: {dense_units: [8]}\n"),
                        ["run.yaml", "model.sequence.activation", "relux"]),
    "filter wider than promoters": (model_section("model:\n  sequence: {filters: [4], filter_width: [2000]}\n"),
                                    ["run.yaml", "model.sequence.filter_width = 2000", "data.sequence_length = 60"]),
    "pool larger than positions": (model_section("model:\n  sequence: {filters: [4], filter_width: [5], "
                                                 "pool: ['5000']}\n"),
                                   ["run.yaml", "model.sequence.pool = 5000"]),
    "unknown fusion": (model_section("model:\n  fusion: tensr\n"), ["run.yaml", "model.fusion", "tensr"]),
    "validation fraction 0": (data_section("  split_fractions: [0.9, 0.0, 0.1]\n"),
                              ["run.yaml", "data.split_fractions", "validation"]),
    "negative epochs": (training_section("training: {epochs: -3}\n"), ["run.yaml", "training.epochs", "-3"]),
    "learning rate 0": (training_section("training: {learning_rate: 0}\n"), ["run.yaml", "training.learning_rate"]),
    "empty YAML": (lambda files, folder: ("", ()), ["run.yaml", "empty"]),
    "tracking store under a file": (tracking_uri(under_a_file), ["tracking URI", "a-file", "is a file"]),
    "tracking store under /proc": (tracking_uri(lambda folder: "sqlite:////proc/deepreg/mlflow.db"),
                                   ["tracking URI", "/proc"]),
    "file: tracking URI": (tracking_uri(lambda folder: "file://"), ["tracking URI 'file://'", "file store"]),
    "bare-word tracking URI": (tracking_uri(lambda folder: "banana"), ["tracking URI 'banana'"]),
    "dead tracking server": (tracking_uri(lambda folder: "http://127.0.0.1:1"),
                             ["tracking URI 'http://127.0.0.1:1'", "no tracking server answers"]),
}


@pytest.fixture
def cli(monkeypatch, capsys):
    """`deepreg` in this process (imports paid once), with the settings it changes restored afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, value in MLFLOW_HTTP_LIMITS.items():
        monkeypatch.setenv(name, os.environ.get(name, value))
    previous = signal.getsignal(signal.SIGTERM)

    def run(*args):
        code = main(list(args))
        return code, capsys.readouterr()
    yield run
    signal.signal(signal.SIGTERM, previous)


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_naming_it_and_writes_nothing(case, tmp_path, compendium, cli, monkeypatch):
    make, expected = BAD_INPUTS[case]
    inputs, work = tmp_path / "inputs", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    text, extra = make(compendium, inputs)
    (work / "run.yaml").write_text(text)
    monkeypatch.chdir(work)
    started = time.perf_counter()
    code, output = cli("train", "--config", "run.yaml", *extra)
    lines = [line for line in output.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, output.err
    assert lines[0].startswith("deepreg train: error: ")
    for part in expected:
        assert part in lines[0], lines[0]
    assert files_under(work) == ["run.yaml"]
    assert time.perf_counter() - started < 30


def test_demo_refuses_zero_epochs_instead_of_running_the_full_demo(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, output = cli("demo", "--epochs", "0")
    assert code == 2 and output.err.strip() == "deepreg demo: error: --epochs: expected at least 1 epoch, got 0"
    assert files_under(tmp_path) == []


def test_r_write_csv_and_a_pcl_without_gweight_are_read_as_meant(tmp_path, compendium):
    lines = Path(compendium["expression"]).read_text().splitlines()
    quoted = [",".join(f'"{cell}"' if index < 2 else cell for index, cell in enumerate(line.split("\t")))
              for line in lines]
    quoted[0] = ",".join(f'"{cell}"' for cell in lines[0].split("\t"))
    (tmp_path / "r.csv").write_text("\n".join(quoted) + "\n")
    without_weight = ["\t".join(cells[:2] + cells[3:]) for cells in (line.split("\t") for line in lines)]
    (tmp_path / "no-gweight.pcl").write_text("\n".join(without_weight) + "\n")
    original = read_expression(compendium["expression"])
    for name in ("r.csv", "no-gweight.pcl"):
        matrix = read_expression(tmp_path / name)
        assert matrix.conditions == original.conditions and matrix.genes == original.genes
        np.testing.assert_array_equal(matrix.values, original.values)


# --- signals: SIGTERM ends a run KILLED with its curves, SIGKILL is reaped by the next command ---------

def start_long_training(folder: Path, compendium) -> subprocess.Popen:
    folder.mkdir()
    (folder / "run.yaml").write_text(run_yaml(compendium, training="training: {epochs: 500, block_genes: 16, "
                                              "block_conditions: 8, early_stopping_patience: 500, lr_patience: 500}\n"))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    # Output goes to files, not pipes: an unread pipe would fill up and stall the training.
    with open(folder / "stdout.log", "w") as stdout, open(folder / "stderr.log", "w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "deepreg", "train", "--config", "run.yaml"], cwd=folder,
                                env=environment, stdout=stdout, stderr=stderr, text=True)


def stderr_of(folder: Path) -> str:
    return (folder / "stderr.log").read_text()


def store_of(folder: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{folder}/mlruns/mlflow.db")


def the_run(folder: Path):
    client = store_of(folder)
    runs = client.search_runs([client.get_experiment_by_name("deepreg").experiment_id])
    assert len(runs) == 1
    return runs[0]


def wait_until_mid_epoch(folder: Path, process: subprocess.Popen, seconds: float = 400) -> None:
    """Until the run has logged its first epoch (so the signal lands between epochs 1 and 500).

    The store is opened only after the training printed its first epoch's line: opening it while the
    subprocess is still creating it would run MLflow's schema migrations twice on one new database.
    """
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert process.poll() is None, stderr_of(folder)[-3000:]
        printed = (folder / "stdout.log").read_text() if (folder / "stdout.log").is_file() else ""
        if "val_loss" in printed:
            try:
                if store_of(folder).get_metric_history(the_run(folder).info.run_id, "val_loss"):
                    return
            except Exception:  # the epoch's metrics are still being written
                pass
        time.sleep(0.5)
    raise AssertionError("the run logged no epoch in time")


def test_sigterm_ends_the_run_killed_with_its_curves_and_sigkill_is_marked_failed_by_the_next_command(
        tmp_path, compendium, cli, monkeypatch):
    terminated, killed = tmp_path / "terminated", tmp_path / "killed"
    processes = {terminated: start_long_training(terminated, compendium),
                 killed: start_long_training(killed, compendium)}
    try:
        for folder, process in processes.items():
            wait_until_mid_epoch(folder, process)
        processes[terminated].send_signal(signal.SIGTERM)
        processes[killed].send_signal(signal.SIGKILL)
        processes[terminated].wait(timeout=120)
        processes[killed].wait(timeout=60)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    stderr = stderr_of(terminated)
    assert processes[terminated].returncode == 143, stderr[-3000:]
    assert "deepreg train: terminated (SIGTERM)" in stderr
    run = the_run(terminated)
    assert run.info.status == "KILLED" and run.info.end_time
    assert run.data.tags["deepreg.reason"] == "terminated (SIGTERM)"
    assert store_of(terminated).get_metric_history(run.info.run_id, "val_loss")

    assert processes[killed].returncode == -signal.SIGKILL
    dead = the_run(killed)
    assert dead.info.status == "RUNNING" and dead.data.tags["deepreg.pid"] == str(processes[killed].pid)
    monkeypatch.chdir(killed)
    (killed / "next.yaml").write_text(run_yaml(compendium))
    code, output = cli("train", "--config", "next.yaml")
    assert code == 0, output.err
    client = store_of(killed)
    reaped = client.get_run(dead.info.run_id)
    assert reaped.info.status == "FAILED" and reaped.info.end_time
    assert f"{processes[killed].pid} is gone" in reaped.data.tags["deepreg.reason"]
    statuses = sorted(r.info.status for r in client.search_runs([dead.info.experiment_id]))
    assert statuses == ["FAILED", "FINISHED"]


# --- no partial output under a final name ----------------------------------------------------------

def cache_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def fill(path: Path) -> None:
    """Write zeros to `path` until its filesystem is full."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 4096):
            pass
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


@pytest.fixture
def full_disk(tmp_path, request):
    """A cache folder on a filesystem with no room for the cache: a real tmpfs, or ENOSPC at os.write."""
    folder = tmp_path / "full"
    folder.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                                 capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("no permission to mount a tmpfs here; the injected case covers ENOSPC")
        try:
            fill(folder / "filler")
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    real_write = os.write

    def no_space(descriptor, data):
        if os.readlink(f"/proc/self/fd/{descriptor}").startswith(str(folder)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(descriptor, data)
    request.getfixturevalue("monkeypatch").setattr(os, "write", no_space)
    yield folder


@pytest.mark.parametrize("full_disk", ["tmpfs", "injected"], indirect=True)
def test_a_full_disk_leaves_no_cache_under_its_name_and_training_data_still_loads(full_disk, data_config, caplog):
    config = data_config.with_updates({"cache_dir": str(full_disk)})
    before = [name for name in cache_files(full_disk) if name != "filler"]
    dataset = load_dataset(config)
    assert dataset.n_genes == 120 and np.isfinite(dataset.expression).any()
    after = [name for name in cache_files(full_disk) if name != "filler"]
    assert after == before == []
    assert "no space left on device" in caplog.text and "continuing without a dataset cache" in caplog.text


def test_simulate_onto_a_full_disk_exits_2_with_one_line_and_leaves_no_file(tmp_path, cli, monkeypatch):
    out = tmp_path / "bundle"
    real_write = os.write

    def no_space(descriptor, data):
        if os.readlink(f"/proc/self/fd/{descriptor}").startswith(str(out)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(descriptor, data)
    monkeypatch.setattr(os, "write", no_space)
    code, output = cli("simulate", "--out", str(out), "--n-genes", "80", "--n-conditions", "6",
                       "--n-regulators", "12", "--promoter-length", "200")
    lines = [line for line in output.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, output.err
    assert "expression.pcl.gz" in lines[0] and "no space left on device" in lines[0]
    assert [path for path in out.rglob("*") if path.is_file()] == []


def test_stale_partial_files_of_dead_writers_are_removed_and_live_ones_kept(data_config, tmp_path):
    cache = Path(data_config.cache_dir)
    cache.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = os.uname().nodename.replace("~", "-")
    dead = cache / f".partial-{finished.stdout.strip()}@{host}~0000~dataset-x.h5"
    live = cache / f".partial-{os.getppid()}@{host}~0000~dataset-y.h5"
    old_style = cache / ".partial-abc123.h5"
    for path in (dead, live, old_style):
        path.write_bytes(b"half a file")
    hours_ago = time.time() - 7 * 3600
    os.utime(old_style, (hours_ago, hours_ago))
    load_dataset(data_config)
    names = cache_files(cache)
    assert dead.name not in names and old_style.name not in names and live.name in names
    assert sum(name.startswith("dataset-") for name in names) == 1


def test_a_cache_failing_its_checksum_is_rebuilt_with_a_line_saying_so(data_config, caplog):
    original = load_dataset(data_config)
    (cache_file,) = Path(data_config.cache_dir).glob("dataset-*.h5")
    with h5py.File(cache_file, "r+") as store:
        store["expression"][0, 0] = 99.0
    rebuilt = load_dataset(data_config)
    assert "failed its check" in caplog.text and "rebuilding it" in caplog.text
    np.testing.assert_array_equal(rebuilt.expression, original.expression)
    caplog.clear()
    np.testing.assert_array_equal(load_dataset(data_config).expression, original.expression)
    assert "failed its check" not in caplog.text


def test_attribute_of_an_unknown_run_is_one_line(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    code, output = cli("attribute", "--model", "runs:/0123456789abcdef/model", "--tracking-uri", uri)
    assert code == 2, output.err
    assert output.err.strip() == (f"deepreg attribute: error: --model runs:/0123456789abcdef/model: no run "
                                  f"'0123456789abcdef' in the tracking store {uri} (expected runs:/RUN_ID/model of "
                                  "a run there, or models:/NAME@ALIAS)")


def test_a_full_disk_behind_a_librarys_own_exception_is_still_found():
    """MLflow, h5py and SQLAlchemy wrap ENOSPC in their own errors; the CLI still says 'no space left'."""
    from deepreg._files import disk_full_cause

    class ArtifactUploadFailed(Exception):
        pass

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "model.keras")
        except OSError as error:
            raise ArtifactUploadFailed("could not log the model") from error
    except ArtifactUploadFailed as wrapped:
        assert disk_full_cause(wrapped).filename == "model.keras"
    assert disk_full_cause(ValueError("a different problem")) is None
