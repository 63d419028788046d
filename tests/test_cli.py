"""The command line as a user meets it: the bundled sample, status, and one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from fercurate import cli, schema
from tests import factories


def run_cli(*args, **env):
    """Run ``fercurate`` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "fercurate.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_launch_without_data_runs_on_the_bundled_sample(launched_sample, capsys):
    out, _ = launched_sample
    assert "FER2013 not found" in out and "fer2013-sample" in out
    assert cli.main(["status", "fer2013-sample", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["samples"] >= 350
    assert set(status["counts"]) == {"train", "val", "test"}
    assert all(status["counts"][s][c] > 0 for s in status["counts"] for c in schema.EMOTIONS)
    # a second launch reuses the dataset
    assert cli.main(["launch", "fer2013", "--no-app"]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_launch_prefers_fercurate_data_over_the_sample(tmp_path, monkeypatch, capsys):
    factories.fer2013_folder(tmp_path / "fer2013", per_class=1)
    monkeypatch.setenv("FERCURATE_DATA", str(tmp_path))
    assert cli.main(["launch", "fer2013", "--no-app"]) == 0
    out = capsys.readouterr().out
    assert "dataset 'fer2013' created: 21 samples" in out
    assert cli.main(["status", "fer2013"]) == 0
    table = capsys.readouterr().out
    assert "all" in table
    from fercurate.signals import computed, resolve
    import fiftyone as fo
    done = computed(fo.load_dataset("fer2013"))
    assert done and set(done) <= set(resolve(None))
    assert all(f"signal {name}" in table for name in done)


def test_ingest_status_and_delete(tmp_path, capsys):
    csv = factories.fer2013_csv(tmp_path / "fer2013.csv")
    assert cli.main(["ingest", str(csv), "--name", "cli-csv"]) == 0
    assert "dataset 'cli-csv' created: 21 samples" in capsys.readouterr().out
    assert cli.main(["status"]) == 0
    assert "cli-csv" in capsys.readouterr().out.split()
    assert cli.main(["delete", "cli-csv", "--yes"]) == 0
    assert cli.main(["status", "cli-csv"]) == 2
    assert "no dataset named 'cli-csv'" in capsys.readouterr().err


@pytest.mark.parametrize("args, fragment", [
    (["ingest", "/does/not/exist"], "/does/not/exist: does not exist"),
    (["launch", "mydata"], "no data for 'mydata'"),
    (["launch", "fer2013", "--source", "/nope/fer"], "/nope/fer: does not exist"),
    (["ingest", ".", "--layout", "weird"], "unknown"),
])
def test_bad_input_gives_one_line_error_without_traceback(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("fercurate: error:") and fragment in lines[-1]
    assert "Traceback" not in result.stderr


def test_bad_csv_row_error_names_the_line(tmp_path):
    csv = factories.fer2013_csv(tmp_path / "fer2013.csv", npix=100)
    result = run_cli("ingest", str(csv))
    assert result.returncode == 2 and "line 2: 100 pixels, expected 2304" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_teaches_layouts_and_environment():
    result = run_cli("launch", "--help")
    assert result.returncode == 0 and "FERCURATE_DATA" in result.stdout
    assert "FIFTYONE_DATABASE_URI" in run_cli("--help").stdout


def test_training_entry_point_answers_help():
    result = subprocess.run([sys.executable, "-m", "training.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "fercurate manifest" in result.stdout
