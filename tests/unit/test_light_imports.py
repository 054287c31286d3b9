"""What a parallel audit's or build's helper process imports before it can take a slice.

Spawn starts each helper from nothing: it runs the `payments` console script again, then
imports the module its task lives in. Both must stay clear of the web stack and the PSP
clients, or every helper waits seconds before it helps (docs/performance.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("bootstrap.composition", "cli.main", "fastapi", "aiohttp", "stripe", "httpx")


def loaded_after(statement: str) -> set[str]:
    """The heavy modules a fresh interpreter has loaded after `statement`."""
    probe = f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(  # noqa: S603 - our own interpreter, a fixed probe
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out)) & set(HEAVY)


def test_the_console_script_imports_nothing_heavy_until_a_command_runs() -> None:
    assert loaded_after("from cli.launch import main") == set()


def test_a_helper_process_imports_the_read_side_only() -> None:
    assert loaded_after("import bootstrap.audit_pool") == set()


def test_the_probe_sees_heavy_imports() -> None:
    """The probe itself works: the composition root does load the web clients."""
    assert {"bootstrap.composition", "aiohttp"} <= loaded_after("import bootstrap.composition")
