"""Server settings: one frozen object, read from VMV_* variables and CLI flags.

``Settings.from_env`` is the only reader of the environment; it takes the mapping
as an argument so tests never touch ``os.environ``. Flags win over variables
(``dataclasses.replace`` with the flags the user gave).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ("Settings",)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected on/off, got {text!r}")


def _parse_synchronous(text: str) -> str:
    value = text.strip().upper()
    if value not in {"FULL", "NORMAL"}:
        raise ValueError("expected full or normal")
    return value.lower()


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Defaults suit one machine and a real deployment."""

    host: str = "127.0.0.1"
    port: int = 8000
    #: path of the SQLite database (the embedded default store)
    db: Path = Path("data/vmv.sqlite3")
    #: SQLite durability: "full" fsyncs every commit (survives power loss); "normal"
    #: (WAL) survives a crash or kill -9 of the server but not of the machine
    synchronous: str = "full"
    #: authentication on (contract section 6); off is for local development only
    auth: bool = True
    #: HS256 signing secret; None: generated once and kept beside the database
    secret: str | None = field(default=None, repr=False)
    #: largest accepted WebSocket frame, in bytes (4413 past it)
    max_message_size: int = 1024 * 1024
    #: an awareness state not renewed for this long is removed; a connection that
    #: sends nothing for this long is closed (contract section 5: 30 s at most)
    awareness_timeout: float = 30.0
    #: awareness changes of a room are coalesced over this tick, in seconds
    awareness_tick: float = 0.05
    #: a room with no connection is unloaded after this many seconds
    room_idle_seconds: float = 30.0
    #: compact a workshop once this many updates follow its snapshot ...
    compact_updates: int = 2000
    #: ... or once they weigh this many bytes
    compact_bytes: int = 8 * 1024 * 1024
    #: covered updates younger than this survive compaction (history views)
    history_seconds: float = 0.0
    #: frames queued for one connection before it counts as a slow consumer
    send_queue_size: int = 4096
    #: messages per second one connection may send, averaged over a burst
    rate_limit: float = 200.0
    #: burst size of the rate limit
    rate_burst: int = 1000
    #: most connections one workshop accepts
    max_connections_per_workshop: int = 500
    #: Origin values allowed for browser WebSocket upgrades; empty: the server's own
    allowed_origins: tuple[str, ...] = ()
    #: WebSocket ping interval in seconds, 0 for none (a peer that misses a pong for
    #: as long is dropped). Off by default: vanished peers are already dropped by the
    #: application's own liveness rule (nothing received within awareness_timeout ->
    #: 4408), which y-websocket providers satisfy with their awareness renewals.
    ping_interval: float = 0.0
    #: accept permessage-deflate when a client offers it. Off by default: every frame
    #: is compressed separately for every recipient, which cost 27-30% of the server's
    #: CPU in the fan-out benchmark; Yjs frames are small and binary.
    ws_deflate: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from ``VMV_*`` variables; unknown variables are ignored."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = "VMV_" + f.name.upper()
            if key not in environ:
                continue
            values[f.name] = _convert(key, f.name, environ[key])
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
    def data_dir(self) -> Path:
        return self.db.parent


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "host": str,
    "port": int,
    "db": Path,
    "auth": _parse_bool,
    "secret": str,
    "max_message_size": int,
    "awareness_timeout": float,
    "awareness_tick": float,
    "room_idle_seconds": float,
    "compact_updates": int,
    "compact_bytes": int,
    "history_seconds": float,
    "send_queue_size": int,
    "rate_limit": float,
    "rate_burst": int,
    "max_connections_per_workshop": int,
    "allowed_origins": _parse_list,
    "ping_interval": float,
    "ws_deflate": _parse_bool,
    "synchronous": _parse_synchronous,
}


def _convert(key: str, name: str, raw: str) -> Any:
    try:
        return _CONVERTERS[name](raw)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{key}={raw!r} is invalid: {exc}") from exc
