"""The close codes the cluster adds to the contract's."""

from __future__ import annotations

from ...errors import CloseError

__all__ = ("Moved", "RemoteClose")


class Moved(CloseError):
    """The workshop moved to another process (failover, a lost lease): reconnect (1012, service restart)."""

    code = 1012


class RemoteClose(CloseError):
    """A close decided by the workshop's owner in another process, passed on with its code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        # a refusal for bad input: what the client still had queued is dropped, as on the owner
        self.refuses_input = code in (4400, 4403, 4413, 4429)
