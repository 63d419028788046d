"""What a wheel carries: the FiftyOne review plugin ships inside the package, and FiftyOne finds it
there, without the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_FILES = ("fiftyone.yml", "__init__.py", "operators.py", "panel.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"        # a copy, so the build leaves no build/ or egg-info in the checkout
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "artifacts"))
    # no build isolation: the venv's setuptools builds it offline, as `pip install .` would
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("fercurate-*.whl")
    return built


def test_the_wheel_holds_the_plugin(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"fercurate/plugins/fercurate/{f}" for f in PLUGIN_FILES} <= names
    assert not any(n.startswith(("plugins/", "tests/")) for n in names)


def test_fiftyone_finds_the_plugin_of_an_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)          # what pip does with a pure-Python wheel
    probe = ("import fiftyone as fo, fiftyone.plugins as fop; from fercurate import config; "
             "d = config.plugins_dir(); fo.config.plugins_dir = str(d); "
             "print(d); print([p.name for p in fop.list_plugins(enabled='all')])")
    env = {**os.environ, "PYTHONPATH": str(site), "FERCURATE_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    folder, plugins = done.stdout.strip().splitlines()[-2:]
    assert Path(folder) == site / "fercurate" / "plugins"
    assert "@fercurate/review" in plugins


def test_plugin_path_prints_the_folder_to_point_fiftyone_at(capsys):
    from fercurate import cli

    assert cli.main(["plugin-path"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert (folder / "fercurate" / "fiftyone.yml").is_file()
