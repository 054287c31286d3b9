"""docker-compose.yml and the Dockerfile, kept right by reading (there is no Docker engine
here): every service runs a command our CLI accepts, and the image holds every package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OURS = {name: s for name, s in COMPOSE["services"].items() if s.get("build") == "."}


def parses(args: list[str]) -> Any:
    """Parse a command line as `payments` would, without running it (a click context)."""
    group: Any = typer.main.get_command(cli)
    name, *rest = args
    command = group.commands.get(name)
    assert command is not None, f"`payments {name}` does not exist"
    return command.make_context(name, list(rest))


@pytest.mark.parametrize("service", sorted(OURS))
def test_every_service_runs_a_command_our_cli_accepts(service: str) -> None:
    parses(OURS[service]["command"])


def test_worker_and_projections_run_alone_and_the_api_without_them() -> None:
    assert OURS["worker"]["command"][0] == "worker"
    assert OURS["projections"]["command"][0] == "projections"
    api = parses(OURS["api"]["command"])
    assert api.params["worker"] is False and api.params["projections"] is False


def test_every_long_running_service_has_a_healthcheck_on_a_port_it_opens() -> None:
    for name, service in OURS.items():
        if name == "migrate":
            assert service["restart"] == "no"
            continue
        check = " ".join(service["healthcheck"]["test"])
        port = re.search(r"127\.0\.0\.1:(\d+)", check)
        assert port, name
        assert port.group(1) in " ".join(service["command"]), f"{name} checks another port"


def test_the_image_copies_every_package_the_project_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert packages == copied
