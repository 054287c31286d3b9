"""`payments migrate` creates tables once, even when several processes run it at once."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from chaos.processes import BIN, base_env
from tests.conftest import new_store_url

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_migrations_all_succeed(
    request: pytest.FixtureRequest, tmp_path: object, kind: str
) -> None:
    url = new_store_url(request, kind, tmp_path)  # type: ignore[arg-type]
    env = base_env(database_url=url)
    runs = [
        subprocess.Popen(  # noqa: S603 - our own console script
            [str(BIN / "payments"), "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(6)
    ]
    outputs = [(run.wait(60), run.stdout.read().decode() if run.stdout else "") for run in runs]
    assert all(code == 0 for code, _ in outputs), outputs
    again = subprocess.run(  # noqa: S603
        [str(BIN / "payments"), "migrate"], env=env, capture_output=True, check=False
    )
    assert again.returncode == 0 and b"migrations applied" in again.stdout
    if kind == "postgres":
        base, _, schema = url.partition("?schema=")
        with psycopg.connect(base) as conn:
            query = "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            tables = {row[0] for row in conn.execute(query, (schema,))}
        assert "payments_events" in tables


def test_bad_settings_are_a_clear_error_not_a_traceback(tmp_path: object) -> None:
    env = base_env(database_url="mysql://nope/x")
    run = subprocess.run(  # noqa: S603
        [str(BIN / "payments"), "migrate"], env=env, capture_output=True, check=False
    )
    assert run.returncode == 2
    assert b"PAYMENTS_DATABASE_URL" in run.stderr and b"Traceback" not in run.stderr
