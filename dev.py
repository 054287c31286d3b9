#!/usr/bin/env python3
"""Bootstrap and run the project with nothing but Python 3.11+.

    python3 dev.py serve [ARGS...]   install the runtime lock, then `payments serve ARGS...`
    python3 dev.py test [PYTEST ARGS...]
                                     install the dev lock, then ruff, mypy and the whole test suite
    python3 dev.py bench [ARGS...]   install the dev lock, then `python -m bench ARGS...`
    python3 dev.py lock              re-resolve requirements/*.lock from pyproject.toml (needs uv)

Everything lives in ./.venv; a lock is reinstalled only when it changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
LOCKS = {
    "runtime": ROOT / "requirements" / "runtime.lock",
    "dev": ROOT / "requirements" / "dev.lock",
}


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    """Run a command from the project root; stop with its exit code if it fails."""
    code = subprocess.call([str(a) for a in args], cwd=ROOT, env=env)  # noqa: S603
    if code != 0:
        sys.exit(code)


def ensure_venv(lock_name: str) -> None:
    """Create .venv and install a lock file into it (hash-checked) plus the project."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must explain itself on old Pythons
        sys.exit("Python 3.11 or newer is required")
    if not (BIN / "python").exists():
        run(sys.executable, "-m", "venv", VENV)
    lock = LOCKS[lock_name]
    packages = " ".join(sorted(p.parent.name for p in ROOT.glob("*/__init__.py")))
    inputs = lock.read_bytes() + (ROOT / "pyproject.toml").read_bytes() + packages.encode()
    digest = hashlib.sha256(inputs)
    stamp = VENV / f".installed-{lock_name}-{digest.hexdigest()[:16]}"
    if stamp.exists():
        return
    pip: list[str | Path] = [
        BIN / "python",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
    ]
    run(*pip, "--require-hashes", "--no-deps", "-r", lock)
    run(*pip, "--no-deps", "--no-build-isolation", "-e", ROOT)
    stamp.touch()


def serve(args: list[str]) -> None:
    ensure_venv("runtime")
    os.execv(BIN / "payments", [str(BIN / "payments"), "serve", *args])  # noqa: S606


SYSTEM_TOOLS = {"chromium": "chromium", "wrk": "wrk"}
"""Executables the browser tests and the bench smoke run need, and their Debian packages."""


def ensure_system_tools() -> None:
    """Install missing tools with apt-get when we can (root on Debian/Ubuntu, as in CI)."""
    missing = [pkg for tool, pkg in SYSTEM_TOOLS.items() if not shutil.which(tool)]
    if not missing:
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.call(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)  # noqa: S607
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing)
    else:
        tools = " ".join(missing)
        print(f"dev.py: install {tools} for the browser tests and the bench smoke run")  # noqa: T201


def test(args: list[str]) -> None:
    ensure_venv("dev")
    ensure_system_tools()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    run(BIN / "ruff", "check", ".", env=env)
    run(BIN / "ruff", "format", "--check", ".", env=env)
    run(BIN / "mypy", env=env)
    run(BIN / "python", "-m", "pytest", *_workers(args), *args, env=env)


def _workers(args: list[str]) -> list[str]:
    """One pytest worker per core, at most two (each holds up to about 50 PostgreSQL
    connections at its peak, and a server's default limit is 100), each taking whole files,
    so that module fixtures (a stack of processes, a browser) start once; `-n 0`,
    `-p no:xdist`, `--pdb` or `--trace` run in one process."""
    alone = ("-n", "--numprocesses", "--pdb", "--trace")  # the debugger needs one process
    if any(a.endswith("no:xdist") or a.startswith(alone) for a in args):
        return []
    return ["--numprocesses", "auto", "--maxprocesses", "2", "--dist", "loadfile"]


def bench(args: list[str]) -> None:
    ensure_venv("dev")
    ensure_system_tools()
    run(BIN / "python", "-m", "bench", *args)


def lock() -> None:
    ensure_venv("dev")
    uv: list[str | Path] = [
        BIN / "python",
        "-m",
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--universal",
    ]
    uv += ["--python-version", "3.11", "--generate-hashes", "-q"]
    dev, runtime = (
        "requirements/dev.lock",
        "requirements/runtime.lock",
    )  # relative: kept in the headers
    run(*uv, "--extra", "dev", "-o", dev)
    run(*uv, "requirements/build.in", "-c", dev, "-o", runtime)


def main() -> None:
    command, *rest = sys.argv[1:] or ["help"]
    if command == "serve":
        serve(rest)
    elif command == "test":
        test(rest)
    elif command == "bench":
        bench(rest)
    elif command == "lock":
        lock()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
