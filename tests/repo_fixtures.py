"""Repositories of different shapes for the CI-chain tests: `make_repo(tmp_path, shape)`.

Shapes:

``"sample"`` — a copy of this repo's ``package1/`` and ``package2/`` (no caches, no build output) plus the
  root ``.gitignore`` and ``config.json`` when present. ``SAMPLE`` describes what the chain should find.

``"odd"`` — a generated repo in a folder whose name has a space (``odd repo/``), built to catch the seed's
  layout assumptions. ``ODD`` describes it:

  - ``libs/alpha/``: src/ layout, pyproject.toml only (setuptools), import package ``alpha_lib``;
  - ``beta/``: setup.py + setup.cfg, notebooks nested three folders deep in every supported language
    (.py with header, .sql, .scala, .r, .ipynb), plus a plain .py helper without the notebook header;
  - ``gamma pkg/``: a package folder whose name has a space; flat layout, import package ``gamma``;
    requirements with comments, an option line and an include;
  - decoys that discovery must never report: ``.venv/`` (pyvenv.cfg) and ``node_modules/`` holding
    ``requirements/*.txt``, ``setup.py`` and ``pyproject.toml``; a virtualenv with an unusual name
    (``tools-env/pyvenv.cfg``); ``scratch/`` ignored by the root ``.gitignore``; ``beta/build/`` and
    ``beta/beta.egg-info/`` build leftovers; a nested ``.gitignore`` in ``gamma pkg/`` ignoring ``local/``.

Every requirement in the generated files is already installed on the test machine (requests, pyyaml,
pytest, packaging), so `install_requirements.py --pip-arg=--no-index` succeeds without network.

Register: ``from repo_fixtures import *`` in conftest.py provides the fixtures ``sample_repo`` and ``odd_repo``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import ROOT

__all__ = ["make_repo", "RepoShape", "SAMPLE", "ODD", "sample_repo", "odd_repo"]


@dataclass(frozen=True)
class RepoShape:
    """What a generated repo holds, for assertions: paths are relative to the repo root, POSIX style."""

    root_name: str
    packages: dict[str, str]  # package folder -> distribution name
    import_packages: dict[str, list[str]]  # distribution name -> top-level import packages in its wheel
    notebooks: list[str]  # "<package folder name>/<path below notebooks/>"
    requirement_files: list[str]  # every package's requirements/*.txt
    common_requirements: list[str] = field(default_factory=list)  # merged common requirement lines, sorted
    decoys: list[str] = field(default_factory=list)  # files discovery must never report


SAMPLE = RepoShape(
    root_name="repo",
    packages={"package1": "package1", "package2": "package2"},
    import_packages={"package1": ["package1"], "package2": ["package2"]},
    notebooks=[
        "package1/exploration/null_profile.py",
        "package1/exploration/orders_summary.sql",
        "package1/quality_report.py",
        "package1/test_quality_rules.py",
        "package2/clean_orders.py",
        "package2/jobs/orders_by_day.sql",
        "package2/jobs/status_demo.py",
        "package2/test_transforms.py",
    ],
    requirement_files=[
        "package1/requirements/common.txt",
        "package1/requirements/dev.txt",
        "package2/requirements/common.txt",
        "package2/requirements/dev.txt",
    ],
    common_requirements=[],
)

ODD = RepoShape(
    root_name="odd repo",
    packages={"beta": "beta", "gamma pkg": "gamma-pkg", "libs/alpha": "alpha"},
    import_packages={"alpha": ["alpha_lib"], "beta": ["beta"], "gamma-pkg": ["gamma"]},
    notebooks=[
        "alpha/overview.py",
        "beta/helpers.py",
        "beta/reports/daily/load.sql",
        "beta/reports/daily/summary.ipynb",
        "beta/reports/weekly/deep/nested/rollup.scala",
        "beta/stats.r",
        "gamma pkg/with space/first notebook.py",
    ],
    requirement_files=[
        "beta/requirements/common.txt",
        "beta/requirements/dev.txt",
        "gamma pkg/requirements/base.txt",
        "gamma pkg/requirements/common.txt",
        "gamma pkg/requirements/dev.txt",
        "libs/alpha/requirements/common.txt",
        "libs/alpha/requirements/dev.txt",
    ],
    common_requirements=["packaging>=23", "pyyaml>=6.0", "requests>=2.31"],
    decoys=[
        ".venv/lib/python3.11/site-packages/decoy/requirements/common.txt",
        ".venv/lib/python3.11/site-packages/decoy/setup.py",
        "node_modules/left-pad/requirements/dev.txt",
        "node_modules/left-pad/setup.py",
        "node_modules/left-pad/pyproject.toml",
        "tools-env/requirements/common.txt",
        "tools-env/setup.py",
        "scratch/requirements/common.txt",
        "scratch/setup.py",
        "beta/build/lib/beta/requirements/common.txt",
        "beta/beta.egg-info/requirements/common.txt",
        "gamma pkg/local/requirements/common.txt",
        "gamma pkg/local/notebooks/ignored.py",
        "beta/notebooks/draft.local.py",
    ],
)

_NOTEBOOK_PY = "# Databricks notebook source\n{body}\n\n# COMMAND ----------\n\nprint('done')\n"
_COPY_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".pytest_cache", "build", "dist", "*.egg-info", ".venv", "venv", "node_modules"
)


def _write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _pyproject(name: str, extra: str = "") -> str:
    return (
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.3.0"\nrequires-python = ">=3.10"\n{extra}'
    )


def _make_sample(root: Path) -> None:
    for package in SAMPLE.packages:
        shutil.copytree(ROOT / package, root / package, ignore=_COPY_IGNORE)
    for name in (".gitignore", "config.json"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, root / name)


def _make_odd(root: Path) -> None:
    _write(root, ".gitignore", "scratch/\n*.log\n*.local.py\n")

    # libs/alpha: src/ layout, pyproject only.
    alpha = "libs/alpha/"
    _write(root, alpha + "pyproject.toml", _pyproject("alpha", '\n[tool.setuptools.packages.find]\nwhere = ["src"]\n'))
    _write(
        root,
        alpha + "src/alpha_lib/__init__.py",
        '"""alpha: greets."""\n\ndef greet(name):\n    return f"hello {name}"\n',
    )
    _write(
        root,
        alpha + "tests/test_alpha.py",
        "from alpha_lib import greet\n\ndef test_greet():\n    assert greet('x') == 'hello x'\n",
    )
    _write(root, alpha + "requirements/common.txt", "requests>=2.31\n")
    _write(root, alpha + "requirements/dev.txt", "-r common.txt\npytest>=8.0\n")
    _write(
        root,
        alpha + "notebooks/overview.py",
        _NOTEBOOK_PY.format(body="from alpha_lib import greet\nprint(greet('alpha'))"),
    )
    _write(root, alpha + "README.md", "# alpha\n")

    # beta: setup.py + setup.cfg, deep notebooks in every language, leftovers of an earlier build.
    beta = "beta/"
    _write(root, beta + "setup.py", "from setuptools import setup\n\nsetup()\n")
    _write(
        root,
        beta + "setup.cfg",
        "[metadata]\nname = beta\nversion = 2.1\n\n[options]\npackages = find:\npython_requires = >=3.10\n\n"
        "[options.packages.find]\ninclude = beta, beta.*\n",
    )
    _write(
        root,
        beta + "pyproject.toml",
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n',
    )
    _write(root, beta + "beta/__init__.py", '"""beta: sums."""\n\ndef total(values):\n    return sum(values)\n')
    _write(root, beta + "beta/core/__init__.py", "")
    _write(root, beta + "beta_test.py", "from beta import total\n\ndef test_total():\n    assert total([1, 2]) == 3\n")
    _write(root, beta + "requirements/common.txt", "# runtime\nrequests>=2.31  # http\npyyaml>=6.0\n")
    _write(root, beta + "requirements/dev.txt", "-r common.txt\npytest>=8.0\n")
    _write(root, beta + "notebooks/stats.r", "# Databricks notebook source\nsummary(c(1, 2, 3))\n")
    _write(root, beta + "notebooks/helpers.py", "def helper():\n    return 1\n")  # no header: a plain file
    _write(root, beta + "notebooks/reports/daily/load.sql", "-- Databricks notebook source\nSELECT 1\n")
    _write(
        root,
        beta + "notebooks/reports/daily/summary.ipynb",
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "metadata": {},
                        "source": ["print(1)"],
                        "outputs": [],
                        "execution_count": None,
                    }
                ],
                "metadata": {"language_info": {"name": "python"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        ),
    )
    _write(
        root, beta + "notebooks/reports/weekly/deep/nested/rollup.scala", "// Databricks notebook source\nprintln(1)\n"
    )
    _write(root, beta + "notebooks/reports/README.md", "not a notebook\n")
    _write(root, beta + "notebooks/draft.local.py", _NOTEBOOK_PY.format(body="# ignored by *.local.py"))
    _write(root, beta + "build/lib/beta/__init__.py", "STALE = True\n")
    _write(root, beta + "build/lib/beta/removed_module.py", "STALE = True\n")
    _write(root, beta + "build/lib/beta/requirements/common.txt", "decoy-build==1\n")
    _write(root, beta + "beta.egg-info/requirements/common.txt", "decoy-egg==1\n")

    # "gamma pkg": a space in the package folder, flat layout, nested .gitignore.
    gamma = "gamma pkg/"
    _write(root, gamma + "pyproject.toml", _pyproject("gamma-pkg", '\n[tool.setuptools]\npackages = ["gamma"]\n'))
    _write(root, gamma + "gamma/__init__.py", '"""gamma: doubles."""\n\ndef double(x):\n    return 2 * x\n')
    _write(
        root,
        gamma + "tests/test_gamma.py",
        "from gamma import double\n\ndef test_double():\n    assert double(2) == 4\n",
    )
    _write(root, gamma + "requirements/base.txt", "packaging>=23\n")
    _write(
        root, gamma + "requirements/common.txt", "# shared with alpha\n--prefer-binary\nrequests>=2.31\n-r base.txt\n"
    )
    _write(root, gamma + "requirements/dev.txt", "-r common.txt\npytest>=8.0\n")
    _write(root, gamma + "notebooks/with space/first notebook.py", _NOTEBOOK_PY.format(body="import gamma"))
    _write(root, gamma + ".gitignore", "local/\n")
    _write(root, gamma + "local/requirements/common.txt", "decoy-local==1\n")
    _write(root, gamma + "local/notebooks/ignored.py", _NOTEBOOK_PY.format(body="# ignored"))

    # Decoys in places discovery must never enter.
    decoy_setup = "raise SystemExit('decoy setup.py must never be built')\n"
    site = ".venv/lib/python3.11/site-packages/decoy/"
    _write(root, ".venv/pyvenv.cfg", "home = /usr/bin\n")
    _write(root, site + "requirements/common.txt", "decoy-venv==1\n")
    _write(root, site + "setup.py", decoy_setup)
    _write(root, "node_modules/left-pad/requirements/dev.txt", "decoy-node==1\n")
    _write(root, "node_modules/left-pad/setup.py", decoy_setup)
    _write(root, "node_modules/left-pad/pyproject.toml", _pyproject("left-pad"))
    _write(root, "tools-env/pyvenv.cfg", "home = /usr/bin\n")
    _write(root, "tools-env/requirements/common.txt", "decoy-env==1\n")
    _write(root, "tools-env/setup.py", decoy_setup)
    _write(root, "scratch/requirements/common.txt", "decoy-scratch==1\n")
    _write(root, "scratch/setup.py", decoy_setup)
    _write(root, "debug.log", "ignored by *.log\n")


def make_repo(tmp_path: Path, shape: str = "sample") -> Path:
    """Create a repo of the given shape under `tmp_path` and return its root folder.

    ``shape="sample"``: copy of this repo's package1/package2 (see `SAMPLE`); ``shape="odd"``: generated
    three-package repo with decoys (see `ODD` and the module docstring). Call it once per shape per tmp_path.
    """
    shapes = {"sample": (SAMPLE, _make_sample), "odd": (ODD, _make_odd)}
    if shape not in shapes:
        raise ValueError(f"unknown repo shape {shape!r}; use one of {sorted(shapes)}")
    description, build = shapes[shape]
    root = Path(tmp_path) / description.root_name
    root.mkdir(parents=True)
    build(root)
    return root


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """A fresh copy of package1/package2 in a repo folder (see `SAMPLE`)."""
    return make_repo(tmp_path, "sample")


@pytest.fixture
def odd_repo(tmp_path: Path) -> Path:
    """A generated three-package repo with decoys and spaces in paths (see `ODD`)."""
    return make_repo(tmp_path, "odd")
