"""Server settings: one frozen object, read from VMV_* variables and CLI flags.

``Settings.from_env`` is the only reader of the environment; it takes the mapping
as an argument so tests never touch ``os.environ``. Flags win over variables
(``dataclasses.replace`` with the flags the user gave).
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, fields
from dataclasses import field as _field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .errors import ConfigError

__all__ = ("Settings",)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected on/off, got {text!r}")


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def setting(default: Any, *, minimum: float | None = None, maximum: float | None = None, repr: bool = True) -> Any:
    """A Settings field with an optional allowed range, checked by ``Settings.__post_init__``."""
    return _field(default=default, repr=repr, metadata={"min": minimum, "max": maximum})


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Defaults suit one machine and a real deployment.

    Each field's type says how its ``VMV_*`` variable is read (``int``, ``float``,
    ``bool`` as on/off, ``Path``, a ``Literal`` of choices, a comma-separated
    ``tuple[str, ...]``); numeric fields carry their allowed range.
    """

    host: str = "127.0.0.1"
    port: int = setting(8000, minimum=0, maximum=65535)
    #: where the data lives, as ``open_store`` takes it: a path to the SQLite file (the
    #: embedded default), ``sqlite:///path``, ``postgresql://user@host:5432/dbname``,
    #: or ``memory:`` (nothing kept: demos and tests)
    db: str = "data/vmv.sqlite3"
    #: the data folder, for what still needs files (an older deployment's secret.key);
    #: None: the SQLite file's folder, or ./data for the other stores (see data_path)
    data_dir: Path | None = None
    #: SQLite durability: "full" fsyncs every commit (survives power loss); "normal"
    #: (WAL) survives a crash or kill -9 of the server but not of the machine
    synchronous: Literal["full", "normal"] = "full"
    #: authentication on (contract section 6); off is for local development only
    auth: bool = True
    #: HS256 signing secret; None: generated once and kept beside the database
    secret: str | None = setting(None, repr=False)
    #: largest accepted WebSocket frame, in bytes (4413 past it)
    max_message_size: int = setting(1024 * 1024, minimum=1024)
    #: an awareness state not renewed for this long is removed; a connection that
    #: sends nothing for this long is closed (contract section 5: 30 s at most)
    awareness_timeout: float = setting(30.0, minimum=0.1, maximum=30.0)
    #: awareness changes of a room are coalesced over this tick, in seconds
    awareness_tick: float = setting(0.05, minimum=0.0, maximum=5.0)
    #: a room with no connection is unloaded after this many seconds
    room_idle_seconds: float = setting(30.0, minimum=0.0)
    #: compact a workshop once this many updates follow its snapshot ...
    compact_updates: int = setting(2000, minimum=1)
    #: ... or once they weigh this many bytes
    compact_bytes: int = setting(8 * 1024 * 1024, minimum=1)
    #: covered updates younger than this survive compaction (history views)
    history_seconds: float = setting(0.0, minimum=0.0)
    #: frames queued for one connection before it counts as a slow consumer (4409)
    send_queue_size: int = setting(4096, minimum=1)
    #: bytes queued for one connection before it counts as a slow consumer (4409)
    send_queue_bytes: int = setting(64 * 1024 * 1024, minimum=1024)
    #: messages per second one connection may send, averaged over a burst
    rate_limit: float = setting(200.0, minimum=0.001)
    #: burst size of the rate limit
    rate_burst: int = setting(1000, minimum=1)
    #: bytes per second one connection may send, averaged over a burst of
    #: ``rate_bytes_burst``: bounds the share of the event loop one sender can take
    #: with heavy updates (bench/bench_isolation.py); 4429 past it
    rate_bytes: int = setting(1024 * 1024, minimum=1024)
    rate_bytes_burst: int = setting(8 * 1024 * 1024, minimum=1024)
    #: most connections one workshop accepts (4429 past it)
    max_connections_per_workshop: int = setting(500, minimum=1)
    #: most connections one participant may hold open in one workshop (4429 past it)
    max_connections_per_participant: int = setting(20, minimum=1)
    #: most awareness client ids one connection may announce (4429 past it)
    max_awareness_clients: int = setting(16, minimum=1)
    #: largest awareness state (its JSON), in bytes (4413 past it)
    max_awareness_state_bytes: int = setting(16 * 1024, minimum=64)
    #: a workshop's stored document may not grow past this many bytes: a participant's
    #: update that would pass it is refused (4413); 0 for no quota
    workshop_quota_bytes: int = setting(64 * 1024 * 1024, minimum=0)
    # -- fair shares (docs/security.md, "Budgets per participant"; server/budgets.py)
    #: the share of the workshop quota one participant (not the facilitator) may write,
    #: counted while the server runs (4413 past it)
    participant_quota_share: float = setting(0.25, minimum=0.01, maximum=1.0)
    #: the last part of the quota kept for the facilitator, so they can always moderate
    facilitator_quota_reserve: float = setting(0.1, minimum=0.0, maximum=0.9)
    #: connections of a workshop kept for its facilitator: participants and observers
    #: are refused (4429) once max_connections_per_workshop minus this many are open
    facilitator_connection_reserve: int = setting(10, minimum=0)
    #: seconds of the event loop one participant's input may cost per second, on average
    #: (integration, checks, sync answers); 4429 while past it
    work_share: float = setting(0.1, minimum=0.001, maximum=1.0)
    #: ... and at once, in seconds
    work_burst: float = setting(1.0, minimum=0.01, maximum=60.0)
    #: most placement work one update may cause (items yrs may scan to place its items,
    #: UpdateSummary.placement_cost; ~15-45 ns each): an update of more than one costly
    #: item past it is refused (4413) and must be sent in parts
    max_update_work: int = setting(2_000_000, minimum=10_000)
    #: compact a workshop once integrating its updates since the snapshot took this many
    #: seconds: loading it again then costs a snapshot, not the same work again
    compact_work_seconds: float = setting(0.5, minimum=0.01)
    #: most client ids one participant may claim by announcing them in awareness before
    #: writing under them (4429 past it)
    max_announced_claims: int = setting(64, minimum=1)
    #: Origin values allowed for browser WebSocket upgrades; empty: the server's own
    allowed_origins: tuple[str, ...] = ()
    #: WebSocket ping interval in seconds, 0 for none (a peer that misses a pong for
    #: as long is dropped). Off by default: vanished peers are already dropped by the
    #: application's own liveness rule (nothing received within awareness_timeout ->
    #: 4408), which y-websocket providers satisfy with their awareness renewals.
    ping_interval: float = setting(0.0, minimum=0.0)
    #: accept permessage-deflate when a client offers it. Off by default: every frame
    #: is compressed separately for every recipient, which cost 27-30% of the server's
    #: CPU in the fan-out benchmark; Yjs frames are small and binary.
    ws_deflate: bool = False
    # -- HTTP API limits (docs/security.md, "HTTP limits"); rates are per minute, 0: no limit
    #: largest HTTP request body, in bytes: 413 past it, judged before the rest is read
    max_body_bytes: int = setting(64 * 1024, minimum=1024, maximum=64 * 1024 * 1024)
    #: workshops one client address may create per minute, on average (429 past it) ...
    workshop_create_rate: float = setting(10.0, minimum=0.0)
    #: ... and at once
    workshop_create_burst: int = setting(20, minimum=1)
    #: join attempts (right or wrong code) one client address may make per minute ...
    join_rate: float = setting(30.0, minimum=0.0)
    #: ... and at once
    join_burst: int = setting(30, minimum=1)
    #: wrong invite codes one workshop accepts per minute from all addresses together ...
    invite_guess_rate: float = setting(10.0, minimum=0.0)
    #: ... and at once; past it every join of that workshop waits (429)
    invite_guess_burst: int = setting(20, minimum=1)
    # -- transport limits (docs/security.md, "Transport limits"; vmv_sync/server/transport.py)
    #: seconds a connection has to send a complete HTTP request head, from its opening or
    #: the end of the previous response; closed past it (idle and slowloris sockets)
    header_timeout: float = setting(10.0, minimum=0.1, maximum=300.0)
    #: most bytes of one HTTP request head (request line and headers): 431 past it
    max_request_head_bytes: int = setting(64 * 1024, minimum=1024, maximum=16 * 1024 * 1024)
    #: seconds from a complete WebSocket upgrade request to the server's answer; dropped past it
    ws_handshake_timeout: float = setting(10.0, minimum=0.1, maximum=300.0)
    #: most open connections in all (HTTP and WebSocket), refused past it; lowered at
    #: start to the open-file limit minus a reserve if that is smaller
    max_connections: int = setting(10000, minimum=1)
    #: most open connections from one client address, refused past it; 0 for no cap
    #: (behind a reverse proxy every client has the proxy's address)
    max_connections_per_address: int = setting(256, minimum=0)
    #: hold loopback clients (127.0.0.0/8, ::1) to max_connections_per_address too; off:
    #: a reverse proxy on this host brings every client from one loopback address
    per_address_cap_loopback: bool = False
    # -- operations (docs/operations.md, docs/deploy.md)
    #: log lines as text or as one JSON object per line
    log_format: Literal["plain", "json"] = "plain"
    #: reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: addresses,
    #: networks or "*"; empty: none (the TCP peer is the client). server/clientaddr.py
    forwarded_allow_ips: tuple[str, ...] = ()
    # -- tokens signed by the embedding application (docs/auth.md, server/external_auth.py)
    #: a JWKS (JSON file path, or an http(s) URL) with the application's public keys ...
    auth_jwks: str | None = None
    #: ... or one PEM public key file
    auth_public_key: Path | None = None
    #: the ``iss`` these tokens must carry (checked when set)
    auth_issuer: str | None = None
    #: the ``aud`` these tokens must carry (checked when set)
    auth_audience: str | None = None
    #: accepted signature algorithms (asymmetric only)
    auth_algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    #: claims (dotted paths into the token) naming the participant, display name, role, workshop
    auth_claim_participant: str = "sub"
    auth_claim_name: str = "name"
    auth_claim_role: str = "role"
    auth_claim_workshop: str = "wid"
    #: the role given when the role claim is missing or not a vmv-sync role; empty: refuse
    auth_default_role: str = ""
    #: seconds a JWKS fetched from a URL is kept before it is fetched again
    auth_jwks_refresh: float = setting(300.0, minimum=1.0)
    # -- webhooks (docs/webhooks.md, server/webhooks.py)
    #: endpoints that receive the workshop events (comma-separated http(s) URLs); empty: none
    webhook_urls: tuple[str, ...] = ()
    #: HMAC-SHA256 key of the webhook signatures (required with webhook_urls)
    webhook_secret: str | None = setting(None, repr=False)
    #: a mission or vision edit is reported once the text has been unchanged this long
    webhook_quiet_seconds: float = setting(10.0, minimum=0.0, maximum=3600.0)
    #: seconds an endpoint has to answer one delivery
    webhook_timeout: float = setting(10.0, minimum=0.1, maximum=300.0)
    #: the longest wait between two attempts of one event (backoff doubles up to it)
    webhook_max_backoff: float = setting(600.0, minimum=0.1)
    # -- several processes (docs/scaling.md, vmv_sync/server/cluster/)
    #: Redis URL (redis://host:6379/0); set, the server is one node of a cluster that
    #: shares the store (PostgreSQL) with other processes; None: one process, as before
    redis_url: str | None = setting(None, repr=False)
    #: this process's name in the cluster; None: ``{hostname}-{pid}``
    node_id: str | None = None
    #: prefix of every Redis key this cluster uses (several clusters may share one Redis)
    cluster_prefix: str = "vmv"
    #: a workshop owner's lease, in seconds: a dead or paused owner is replaced after it
    #: (failover within 5 s needs <= 3); renewed every quarter of it
    cluster_lease_seconds: float = setting(2.5, minimum=0.5, maximum=60.0)
    #: entries kept per workshop stream in Redis (approximately): a relay further behind
    #: than this fills the gap from the store
    cluster_stream_length: int = setting(1000, minimum=100)

    def __post_init__(self) -> None:
        if isinstance(self.db, os.PathLike):  # Settings(db=Path(...)) and path flags keep working
            object.__setattr__(self, "db", os.fspath(self.db))
        if not isinstance(self.db, str) or not self.db.strip():
            raise ConfigError(f"db={self.db!r} is invalid: expected a path or a store URL")
        for f in fields(self):
            low, high = f.metadata.get("min"), f.metadata.get("max")
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if value != value or value in (float("inf"), float("-inf")):  # NaN passes every comparison
                    raise ConfigError(f"{f.name}={value!r} is not a finite number")
                if (low is not None and value < low) or (high is not None and value > high):
                    raise ConfigError(f"{f.name}={value!r} is out of range {_describe_range(low, high)}")
            choices = _choices(f)
            if choices and value not in choices:
                raise ConfigError(f"{f.name}={value!r} is invalid: expected one of {', '.join(choices)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``VMV_*`` variables; unknown variables are ignored.

        Example:
            >>> Settings.from_env({"VMV_PORT": "9000", "VMV_AUTH": "off"}).port
            9000
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = "VMV_" + f.name.upper()
            if key in environ:
                values[f.name] = _convert(key, f, environ[key])
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; ``None`` values are ignored (unset flags)."""
        from dataclasses import replace

        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **given)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file ``db`` names (a plain path or ``sqlite:///``), None for other stores.

        The same reading as ``vmv_sync.storage.open_store`` (checked by tests/test_config.py):
        a first part that looks like a scheme (``name:``) is a URL; ``memory:`` is no file.
        """
        text = self.db
        if text in ("memory:", ":memory:"):
            return None
        match = _SCHEME.match(text)
        if match is None:
            return Path(text)
        rest = text[match.end() :]
        if match.group(1).lower() == "sqlite" and rest.startswith("///") and len(rest) > 3:
            return Path(rest[3:])
        return None

    @property
    def secret_dir(self) -> Path | None:
        """Where a generated token secret is mirrored (``secret.key``): ``data_dir``, else the
        SQLite file's folder (contract section 6: "beside the database"); None otherwise."""
        if self.data_dir is not None:
            return self.data_dir
        sqlite = self.sqlite_path
        return sqlite.parent if sqlite is not None else None

    @property
    def data_path(self) -> Path:
        """The data folder: ``data_dir`` if set, else the SQLite file's folder, else ``./data``."""
        if self.data_dir is not None:
            return self.data_dir
        sqlite = self.sqlite_path
        return sqlite.parent if sqlite is not None else Path("data")


#: ``scheme:`` at the start of a store URL (two letters at least: a Windows drive is a path)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def _describe_range(low: float | None, high: float | None) -> str:
    if high is None:
        return f">= {low:g}" if low is not None else "(any)"
    if low is None:
        return f"<= {high:g}"
    return f"{low:g}..{high:g}"


_HINTS: dict[str, Any] = {}


def _hint(f: Field[Any]) -> Any:
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(Settings))
    return _HINTS[f.name]


def _choices(f: Field[Any]) -> tuple[str, ...]:
    hint = _hint(f)
    return tuple(get_args(hint)) if get_origin(hint) is Literal else ()


def _reader(f: Field[Any]) -> Callable[[str], Any]:
    """How to read a variable for field ``f``, from the field's type."""
    hint = _hint(f)
    origin = get_origin(hint)
    if origin is Literal:
        return lambda text: text.strip().lower()
    if origin is tuple:
        return _parse_list
    if origin in (typing.Union, types.UnionType):  # Optional[X]: read as X
        hint = next(a for a in get_args(hint) if a is not type(None))
    if hint is bool:
        return _parse_bool
    if hint in (int, float, str, Path):
        return hint  # type: ignore[no-any-return]
    raise TypeError(f"no reader for setting {f.name} of type {hint!r}")  # pragma: no cover


def _convert(key: str, f: Field[Any], raw: str) -> Any:
    try:
        return _reader(f)(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is invalid: {exc}") from exc
