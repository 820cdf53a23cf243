"""``Settings.from_env``: every field read from its ``VMV_*`` variable by its type, range and
choice checks naming the field, unknown variables ignored, flags winning via ``with_overrides``.

The environment is always a plain mapping: nothing here reads or writes ``os.environ``.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from vmv_sync.config import Settings
from vmv_sync.errors import ConfigError

#: field -> (the variable's text, the value it must give); each differs from the default
EVERY_FIELD: dict[str, tuple[str, Any]] = {
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9001", 9001),
    "db": ("postgresql://vmv@db.example:5432/vmv", "postgresql://vmv@db.example:5432/vmv"),
    "data_dir": ("/srv/vmv-files", Path("/srv/vmv-files")),
    "synchronous": (" NORMAL ", "normal"),
    "auth": ("off", False),
    "secret": ("s" * 32, "s" * 32),
    "max_message_size": ("2048", 2048),
    "awareness_timeout": ("12.5", 12.5),
    "awareness_tick": ("0.04", 0.04),
    "room_idle_seconds": ("0", 0.0),
    "compact_updates": ("10", 10),
    "compact_bytes": ("4096", 4096),
    "history_seconds": ("3600", 3600.0),
    "send_queue_size": ("16", 16),
    "send_queue_bytes": ("65536", 65536),
    "rate_limit": ("2.5", 2.5),
    "rate_burst": ("7", 7),
    "rate_bytes": ("2048", 2048),
    "rate_bytes_burst": ("8192", 8192),
    "max_connections_per_workshop": ("3", 3),
    "max_connections_per_participant": ("2", 2),
    "max_awareness_clients": ("4", 4),
    "max_awareness_state_bytes": ("128", 128),
    "workshop_quota_bytes": ("0", 0),
    "allowed_origins": ("https://a.example, https://b.example,,", ("https://a.example", "https://b.example")),
    "ping_interval": ("20", 20.0),
    "ws_deflate": ("on", True),
    "max_body_bytes": ("2048", 2048),
    "workshop_create_rate": ("0", 0.0),
    "workshop_create_burst": ("2", 2),
    "join_rate": ("1.5", 1.5),
    "join_burst": ("3", 3),
    "invite_guess_rate": ("4", 4.0),
    "invite_guess_burst": ("5", 5),
    "header_timeout": ("2.5", 2.5),
    "ws_handshake_timeout": ("3", 3.0),
    "max_connections": ("100", 100),
    "max_connections_per_address": ("0", 0),
    "per_address_cap_loopback": ("yes", True),
    "participant_quota_share": ("0.5", 0.5),
    "facilitator_quota_reserve": ("0.2", 0.2),
    "facilitator_connection_reserve": ("3", 3),
    "work_share": ("0.2", 0.2),
    "work_burst": ("2", 2.0),
    "max_update_work": ("20000", 20000),
    "compact_work_seconds": ("1.5", 1.5),
    "max_announced_claims": ("8", 8),
    "max_request_head_bytes": ("2048", 2048),
    "log_format": ("JSON", "json"),
    "forwarded_allow_ips": ("10.0.0.1, 10.0.0.2", ("10.0.0.1", "10.0.0.2")),
    "auth_jwks": ("https://id.example/jwks.json", "https://id.example/jwks.json"),
    "auth_public_key": ("/etc/vmv/key.pem", Path("/etc/vmv/key.pem")),
    "auth_issuer": ("https://id.example", "https://id.example"),
    "auth_audience": ("vmv", "vmv"),
    "auth_algorithms": ("RS256", ("RS256",)),
    "auth_claim_participant": ("user.id", "user.id"),
    "auth_claim_name": ("user.name", "user.name"),
    "auth_claim_role": ("user.role", "user.role"),
    "auth_claim_workshop": ("workshops", "workshops"),
    "auth_default_role": ("participant", "participant"),
    "auth_jwks_refresh": ("60", 60.0),
    "webhook_urls": ("https://app.example/hooks", ("https://app.example/hooks",)),
    "webhook_secret": ("s" * 32, "s" * 32),
    "webhook_quiet_seconds": ("2.5", 2.5),
    "webhook_timeout": ("3", 3.0),
    "webhook_max_backoff": ("60", 60.0),
    "redis_url": ("redis://cache.example:6379/1", "redis://cache.example:6379/1"),
    "node_id": ("node-a", "node-a"),
    "cluster_prefix": ("vmv-staging", "vmv-staging"),
    "cluster_lease_seconds": ("1.5", 1.5),
    "cluster_stream_length": ("500", 500),
}


def var(name: str) -> str:
    return "VMV_" + name.upper()


def test_the_table_covers_every_field() -> None:
    assert set(EVERY_FIELD) == {f.name for f in fields(Settings)}
    defaults = Settings()
    for name, (_, value) in EVERY_FIELD.items():
        assert getattr(defaults, name) != value, f"{name}: pick a value other than the default"


@pytest.mark.parametrize("name", list(EVERY_FIELD))
def test_each_variable_is_read_by_its_fields_type(name: str) -> None:
    raw, expected = EVERY_FIELD[name]
    value = getattr(Settings.from_env({var(name): raw}), name)
    assert value == expected
    assert type(value) is type(expected)


def test_all_variables_at_once() -> None:
    settings = Settings.from_env({var(name): raw for name, (raw, _) in EVERY_FIELD.items()})
    for name, (_, expected) in EVERY_FIELD.items():
        assert getattr(settings, name) == expected, name


def test_no_variables_give_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_unknown_and_foreign_variables_are_ignored() -> None:
    settings = Settings.from_env({"VMV_NO_SUCH_SETTING": "1", "PORT": "1", "vmv_port": "2", "HOME": "/x"})
    assert settings == Settings()


@pytest.mark.parametrize("raw", ["1", "true", "YES", " On "])
def test_bool_on(raw: str) -> None:
    assert Settings.from_env({"VMV_AUTH": "off", "VMV_WS_DEFLATE": raw}).ws_deflate is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "OFF"])
def test_bool_off(raw: str) -> None:
    assert Settings.from_env({"VMV_AUTH": raw}).auth is False


def test_an_empty_list_is_an_empty_tuple() -> None:
    assert Settings.from_env({"VMV_ALLOWED_ORIGINS": " , "}).allowed_origins == ()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("port", "eighty"),
        ("port", "80.5"),
        ("awareness_timeout", "soon"),
        ("auth", "maybe"),
        ("ws_deflate", ""),
    ],
)
def test_unreadable_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=var(name)):
        Settings.from_env({var(name): raw})


@pytest.mark.parametrize(
    ("name", "raw", "range_text"),
    [
        ("port", "65536", "0..65535"),
        ("port", "-1", "0..65535"),
        ("max_message_size", "1023", ">= 1024"),
        ("awareness_timeout", "31", "0.1..30"),
        ("awareness_timeout", "0.05", "0.1..30"),
        ("awareness_tick", "6", "0..5"),
        ("room_idle_seconds", "-1", ">= 0"),
        ("compact_updates", "0", ">= 1"),
        ("rate_limit", "0", ">= 0.001"),
        ("rate_bytes", "10", ">= 1024"),
        ("max_awareness_state_bytes", "63", ">= 64"),
        ("workshop_quota_bytes", "-1", ">= 0"),
        ("max_body_bytes", str(64 * 1024 * 1024 + 1), "1024..6.71089e+07"),
        ("header_timeout", "0", "0.1..300"),
        ("max_connections", "0", ">= 1"),
    ],
)
def test_values_out_of_range_name_the_field_and_its_range(name: str, raw: str, range_text: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({var(name): raw})
    message = str(error.value)
    assert message.startswith(f"{name}=")
    assert range_text in message


def test_range_limits_are_inclusive() -> None:
    settings = Settings.from_env({"VMV_PORT": "65535", "VMV_AWARENESS_TIMEOUT": "30", "VMV_MAX_MESSAGE_SIZE": "1024"})
    assert (settings.port, settings.awareness_timeout, settings.max_message_size) == (65535, 30.0, 1024)
    assert Settings.from_env({"VMV_PORT": "0"}).port == 0


def test_a_choice_outside_the_literal_names_the_field_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"synchronous='extra' is invalid: expected one of full, normal"):
        Settings.from_env({"VMV_SYNCHRONOUS": "extra"})


def test_settings_built_directly_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="port="):
        Settings(port=70000)
    with pytest.raises(ConfigError, match="synchronous="):
        Settings(synchronous="off")  # type: ignore[arg-type]


def test_flags_override_variables() -> None:
    from_env = Settings.from_env({"VMV_PORT": "9001", "VMV_AUTH": "on", "VMV_HOST": "0.0.0.0"})
    settings = from_env.with_overrides(port=9002, auth=False, host=None)  # host: a flag not given
    assert (settings.port, settings.auth, settings.host) == (9002, False, "0.0.0.0")
    assert from_env.port == 9001  # frozen: a copy was made


def test_overrides_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings().with_overrides(prot=1)
    with pytest.raises(ConfigError, match="port="):
        Settings().with_overrides(port=-5)


def test_the_secret_stays_out_of_the_repr() -> None:
    assert "s" * 32 not in repr(Settings.from_env({"VMV_SECRET": "s" * 32}))


def test_the_data_folder_is_its_own_setting_or_the_sqlite_files_folder() -> None:
    assert Settings.from_env({"VMV_DB": "/srv/vmv/db.sqlite3"}).data_path == Path("/srv/vmv")
    assert Settings.from_env({"VMV_DB": "sqlite:////srv/vmv/db.sqlite3"}).data_path == Path("/srv/vmv")
    assert Settings().data_path == Path("data")  # scripts/serve: ./data/vmv.sqlite3 beside its files
    assert Settings(db="postgresql://db.example/vmv").data_path == Path("data")
    assert Settings(db="memory:").data_path == Path("data")
    given = Settings.from_env({"VMV_DB": "/srv/vmv/db.sqlite3", "VMV_DATA_DIR": "/var/lib/vmv"})
    assert given.data_path == Path("/var/lib/vmv")
    # the generated secret is mirrored beside an SQLite file, or in a data folder given
    assert Settings().secret_dir == Path("data")
    assert Settings(db="postgresql://db.example/vmv").secret_dir is None
    assert Settings(db="postgresql://db.example/vmv", data_dir=Path("/srv/f")).secret_dir == Path("/srv/f")
    assert Settings(db="memory:").secret_dir is None  # nothing kept: no file either
    # a flag for --db still moves the default data folder with it
    assert Settings.from_env({}).with_overrides(db=Path("/tmp/x/v.sqlite3")).data_path == Path("/tmp/x")


@pytest.mark.parametrize(
    "db, sqlite_path",
    [
        ("data/vmv.sqlite3", Path("data/vmv.sqlite3")),
        (Path("/tmp/a b/v.sqlite3"), Path("/tmp/a b/v.sqlite3")),
        ("sqlite:///rel/v.sqlite3", Path("rel/v.sqlite3")),
        ("sqlite:////abs/v.sqlite3", Path("/abs/v.sqlite3")),
        ("postgresql://vmv:pw@db.example:5432/vmv", None),
        ("postgres://db.example/vmv", None),
        ("memory:", None),
        (":memory:", None),
    ],
)
def test_db_takes_a_path_or_a_store_url(db: Any, sqlite_path: Path | None, tmp_path: Path) -> None:
    """Settings.sqlite_path reads ``db`` as open_store does (no file named ``memory:``)."""
    from vmv_sync.storage import MemoryStore, PostgresStore, SQLiteStore, open_store

    settings = Settings(db=db)
    assert isinstance(settings.db, str) and settings.sqlite_path == sqlite_path
    store = open_store(settings.db)
    if sqlite_path is not None:
        assert isinstance(store, SQLiteStore) and store.path == sqlite_path
    else:
        assert isinstance(store, (MemoryStore, PostgresStore))
    assert settings.db == (str(db) if isinstance(db, Path) else db)  # URLs are kept verbatim


def test_an_empty_db_is_refused() -> None:
    with pytest.raises(ConfigError, match="db="):
        Settings.from_env({"VMV_DB": " "})


@pytest.mark.parametrize("name", ["awareness_timeout", "rate_limit", "header_timeout", "awareness_tick"])
def test_nan_is_out_of_every_range(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}="):
        Settings.from_env({var(name): "nan"})
