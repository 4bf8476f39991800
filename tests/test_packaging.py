"""The distribution installs every package it has, under names no other distribution uses."""

from __future__ import annotations

from pathlib import Path

import tomllib

import audiolvm_pipelines
from tests.test_architecture import imports_of

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PROJECT["tool"]["setuptools"]


def test_every_library_package_is_installed() -> None:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "audiolvm").rglob("__init__.py")}
    listed = set(SETUPTOOLS["packages"])
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == {"audiolvm_pipelines"}


def test_the_commands_install_as_audiolvm_pipelines_from_the_pipelines_folder() -> None:
    assert SETUPTOOLS["package-dir"] == {"audiolvm_pipelines": "pipelines"}
    assert PROJECT["project"]["scripts"]["audiolvm"] == "audiolvm_pipelines.cli:main"
    assert Path(audiolvm_pipelines.__file__).resolve() == ROOT / "pipelines" / "__init__.py"
    folders = [ROOT / name for name in ("pipelines", "tests", "benchmarks", "data_scripts")]
    stale = [f"{path.relative_to(ROOT)}:{line}" for folder in folders for path in folder.glob("*.py")
             for line, mod in imports_of(path) if mod.split(".")[0] == "pipelines"]
    assert not stale, f"import audiolvm_pipelines instead of pipelines: {stale}"
