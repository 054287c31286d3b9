"""The `payments` console script's entry point, which imports nothing at module level.

A parallel audit or rebuild forks its helpers from multiprocessing's fork server, and each
helper runs the console script again (as its main module) before the helper's own work.
The script imports this module, so this module must stay light. The command line itself
(cli.main, with the web stack and the PSP clients: about two seconds) is imported only when
a command runs.
"""

from __future__ import annotations


def main() -> None:
    """Run the `payments` command line."""
    from cli.main import main as run  # noqa: PLC0415 - see the module's docstring

    run()
