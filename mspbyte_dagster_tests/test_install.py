"""Installed as a package (not a checkout), the defaults point at the user's folders, never site-packages."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mspbyte_dagster.settings import INSTANCE_CONFIG, REPO_ROOT

MSPBYTE = "from mspbyte_dagster.cli import main; main()"


@pytest.mark.slow
def test_an_installed_package_keeps_its_data_and_instance_out_of_site_packages(tmp_path):
    site, source = tmp_path / "site-packages", tmp_path / "source"  # built from a copy: the checkout stays clean
    shutil.copytree(
        REPO_ROOT / "mspbyte_dagster", source / "mspbyte_dagster", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(site), str(source)],
        check=True,
        capture_output=True,
    )
    home = tmp_path / "home"
    unset = {"MSPBYTE_DATA_DIR", "DATABASE_URL", "DAGSTER_HOME", "XDG_DATA_HOME", "PYTHONPATH"}
    env = {k: v for k, v in os.environ.items() if k not in unset} | {"PYTHONPATH": str(site), "HOME": str(home)}

    def mspbyte(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", MSPBYTE, *args], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    mspbyte("db", "upgrade")
    mspbyte("synth", "--tenants", "1", "--users", "20", "--out", str(tmp_path / "synth"))
    mspbyte("tenants", "import", *map(str, (tmp_path / "synth").iterdir()))
    mspbyte("run", "--all")

    data = home / ".local" / "share" / "mspbyte"
    assert (data / "app.db").is_file()
    config = data / "dagster_home" / "dagster.yaml"
    assert config.is_file() and not config.is_symlink()
    assert config.read_text() == (site / "mspbyte_dagster" / "dagster.yaml").read_text() == INSTANCE_CONFIG.read_text()
    assert not (site / ".mspbyte").exists() and not list(site.rglob("*.db"))
    where = subprocess.run(
        [sys.executable, "-c", "import mspbyte_dagster; print(mspbyte_dagster.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(site), where  # it really ran from the installed copy
