from __future__ import annotations

import pytest

from bootstrap.settings import Role, Settings, database_env, parse_api_keys


def test_sqlite_urls() -> None:
    assert database_env("sqlite:///payments.db", 5)["SQLITE_DBNAME"] == "payments.db"
    assert database_env("sqlite:////var/lib/p.db", 5)["SQLITE_DBNAME"] == "/var/lib/p.db"


def test_postgres_urls_with_password_port_and_schema() -> None:
    env = database_env("postgresql://app:s%40cret@db.internal:6543/pay?schema=t1", 7)
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("app", "s@cret")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db.internal",
        "6543",
        "pay",
    )
    assert env["POSTGRES_SCHEMA"] == "t1"
    assert (env["POSTGRES_POOL_SIZE"], env["POSTGRES_MAX_OVERFLOW"]) == ("3", "4")  # 7 at most


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite:///", "postgresql://host", "nonsense"])
def test_bad_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="PAYMENTS_DATABASE_URL"):
        database_env(url, 5)


def test_api_keys_with_roles() -> None:
    keys = parse_api_keys("checkout:abcdefgh12, ops:zyxwvuts98")
    assert keys == {"abcdefgh12": Role.CHECKOUT, "zyxwvuts98": Role.OPS}


@pytest.mark.parametrize("text", ["admin:abcdefgh12", "checkout:short", "checkout"])
def test_bad_api_keys_name_their_position_but_not_the_key(text: str) -> None:
    with pytest.raises(ValueError, match="entry 1") as error:
        parse_api_keys(text)
    assert text.rsplit(":", 1)[-1] not in str(error.value) or text == "checkout"


def test_settings_refuse_bad_keys_at_startup() -> None:
    with pytest.raises(ValueError, match="api_keys"):
        Settings(api_keys="admin:abcdefgh12")


def test_no_keys_means_development_mode_and_secrets_stay_hidden() -> None:
    settings = Settings(api_keys="", webhook_secret="whsec_x")
    assert settings.development_mode
    assert "whsec_x" not in repr(settings)
    assert not Settings(api_keys="ops:abcdefgh12").development_mode
