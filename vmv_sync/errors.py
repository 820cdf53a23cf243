"""The package's exception hierarchy.

Every error raised on purpose by vmv_sync derives from :class:`VmvSyncError`.
Errors that end a WebSocket connection carry the contract's close ``code`` and a
one-sentence ``reason`` so that one place (the server's connection) can turn any
of them into a close frame.
"""

from __future__ import annotations

from .ids import ID_RULE

__all__ = (
    "VmvSyncError",
    "CloseError",
    "MalformedMessage",
    "Unauthenticated",
    "TokenExpired",
    "Forbidden",
    "ClientIdTaken",
    "MessageTooLarge",
    "TooManyMessages",
    "SlowConsumer",
    "SilentPeer",
    "GoingAway",
    "ServerError",
    "StorageError",
    "ConfigError",
    "ClientError",
    "InvalidWorkshopId",
)


class VmvSyncError(Exception):
    """Base class of every error vmv_sync raises on purpose."""


class CloseError(VmvSyncError):
    """An error that closes one WebSocket connection with a contract close code."""

    code: int = 1011
    #: True when the peer broke a rule: what it still had queued is discarded
    refuses_input: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedMessage(CloseError):
    """A frame that is not valid y-websocket protocol, or an update pycrdt cannot apply."""

    code = 4400
    refuses_input = True


class Unauthenticated(CloseError):
    """Missing, malformed, badly signed, expired or revoked token."""

    code = 4401
    refuses_input = True


class TokenExpired(Unauthenticated):
    """The token of an open connection expired (4401), not refreshed in time.

    Not a broken rule: the edits the connection sent before its token expired are
    still committed (``refuses_input`` is False), and its client reconnects with a
    fresh token or refreshes it in band next time (docs/auth.md).
    """

    refuses_input = False


class Forbidden(CloseError):
    """The principal may not open this workshop or make this write."""

    code = 4403
    refuses_input = True


class ClientIdTaken(Forbidden):
    """An update writes under a Yjs client id that another participant owns (4403).

    The reason always starts with :data:`CLIENT_ID_TAKEN_PREFIX`, so a client can
    tell this refusal (recoverable: pick a fresh client id) from a write rule.
    """

    def __init__(self, client_id: int) -> None:
        super().__init__(f"{CLIENT_ID_TAKEN_PREFIX} {client_id} belongs to another participant; use a fresh one")
        self.client_id = client_id


#: The start of the close reason of :class:`ClientIdTaken` (docs/protocol.md).
CLIENT_ID_TAKEN_PREFIX = "client id taken:"

#: The start of the close reason when a token refresh (message 101) is refused
#: (4401/4403, docs/protocol.md): the connection's *old* token was fine, so a client
#: may reconnect with it instead of giving up.
TOKEN_REFRESH_PREFIX = "token refresh:"


class MessageTooLarge(CloseError):
    """A frame over the configured maximum message size."""

    code = 4413
    refuses_input = True


class TooManyMessages(CloseError):
    """A connection past its message rate limit."""

    code = 4429
    refuses_input = True


class SlowConsumer(CloseError):
    """A connection whose send queue overflowed; it resyncs on reconnect (extension)."""

    code = 4409


class SilentPeer(CloseError):
    """A connection that sent nothing within the awareness timeout (extension)."""

    code = 4408


class GoingAway(CloseError):
    """The server is shutting down."""

    code = 1001


class ServerError(CloseError):
    """The server failed (e.g. could not save); the client should reconnect."""

    code = 1011


class StorageError(VmvSyncError):
    """The store could not read or durably write an update."""


class ConfigError(VmvSyncError):
    """A configuration value is missing or invalid; the message names the key."""


class ClientError(VmvSyncError):
    """An error of the offline-first Python client."""


class InvalidWorkshopId(VmvSyncError):
    """A workshop id outside the contract's 1-64 characters of A-Z a-z 0-9 _ -."""

    def __init__(self, workshop_id: str) -> None:
        super().__init__(
            f"invalid workshop id {workshop_id!r}: {ID_RULE}"
        )
        self.workshop_id = workshop_id
