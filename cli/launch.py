"""The `payments` console script's entry point, which imports nothing at module level.

A parallel audit or rebuild forks its helpers from multiprocessing's fork server, and each
helper runs the console script again (as its main module) before the helper's own work.
The script imports this module, so this module must stay light. The command line itself
(cli.main, with the web stack and the PSP clients: about two seconds) is imported only when
a command runs.
"""

from __future__ import annotations


def main() -> None:
    """Run the `payments` command line; `serve` with its processes' counters shared (set
    before anything imports prometheus_client: bootstrap/shared_counters.py)."""
    import os  # noqa: PLC0415 - see the module's docstring
    import sys  # noqa: PLC0415

    from bootstrap.shared_counters import VARIABLE, shared_directory  # noqa: PLC0415

    if sys.argv[1:2] != ["serve"]:
        # Only serve's processes share counters: a worker or a projections process that
        # found the variable would serve the sum of the directory as its own (counted twice).
        os.environ.pop(VARIABLE, None)
        _run()
        return
    with shared_directory():
        _run()


def _run() -> None:
    from cli.main import main as run  # noqa: PLC0415 - see the module's docstring

    run()
