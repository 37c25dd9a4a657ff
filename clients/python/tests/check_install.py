"""Checks that the package installs with pip from the tree, offline.

Copies the package to a temp dir (pip builds in place, and the source tree
stays clean), makes a venv that sees Debian's setuptools, wheel and pytest,
``pip install --no-build-isolation --no-index`` into it, then checks from the
venv's Python that agentvm imports from the venv, ships py.typed, and that
pytest loads the plugin through its ``pytest11`` entry point by itself.
Run by ctest (PythonClientInstall) with Debian's /usr/bin/python3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

CHECK = """
import importlib.metadata, pathlib, sys
import agentvm
where = pathlib.Path(agentvm.__file__).resolve()
assert str(where).startswith(sys.prefix), f"agentvm imported from {where}, not the venv {sys.prefix}"
assert (where.parent / "py.typed").is_file(), "py.typed is not installed"
assert agentvm.__version__ == importlib.metadata.version("agentvm")
plugins = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
assert plugins.get("agentvm") == "agentvm.pytest_plugin", plugins
print("agentvm", agentvm.__version__, "at", where.parent)
"""


# What the venv's Python imports must be what pip installed, not the tree.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
ENV.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")


def run(argv: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(argv), flush=True)
    result = subprocess.run(argv, text=True, capture_output=True, cwd=cwd, env=ENV)
    if result.returncode != 0:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        raise SystemExit(f"check_install: {argv[0]} exited {result.returncode}")
    return result


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agentvm-pyinstall-") as tmp:
        source = Path(tmp) / "src-copy"
        shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns(
            "tests", "examples", "build", "*.egg-info", "__pycache__", ".mypy_cache", ".pytest_cache"))
        venv = Path(tmp) / "venv"
        run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=tmp)
        python = str(venv / "bin" / "python")
        # The system pip, run by the venv's Python, installs into the venv.
        run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps", "--quiet",
             str(source)], cwd=tmp)
        print(run([python, "-c", CHECK], cwd=tmp).stdout, end="")
        # pytest finds the plugin through the entry point, with no -p.
        help_text = run([python, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=tmp).stdout
        if "--agentvm-socket" not in help_text:
            raise SystemExit("check_install: pytest did not load agentvm's plugin from its entry point")
    print(f"check_install: ok in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
