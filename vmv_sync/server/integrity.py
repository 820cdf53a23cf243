"""What makes an update admissible before anything of it is applied: integrity rules.

"Saved" must mean "in the document". yrs silently keeps an update out of the
document in three cases, and the server would still store, relay and acknowledge
it; so each is refused up front, for every connection, authentication on or off:

- a clock gap: the update's structs for a client start past the document's clock
  for that client (yrs would even integrate it, invisibly to sync; see
  :meth:`UpdateSummary.skips_ahead_of`);
- a missing dependency: an item names as its origin or parent, or a delete range
  names, a struct the document does not have (yrs parks it as *pending*);
- a clock range the document already has, written under someone else's client id:
  yrs ignores structs it has, so whoever writes first at a client's next clock
  decides what that client's later updates mean. Client ids therefore *belong* to
  participants (:class:`~vmv_sync.server.clientids.ClientIds`): the first participant to write under an id owns
  it, durably (the claim is committed with the update), and nobody else may write
  new structs under it. A client id can only be claimed from clock 0, so ids written
  before ownership was recorded (or with authentication off) stay unclaimable.

An update may also not advance one client's clock implausibly far in one go.
Structs the document already has (a resend, a peer's sync step 2 that overlaps)
are exact duplicates under an owned id and pass: yrs ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import MalformedMessage
from ..protocol.update import UpdateSummary

__all__ = ("MAX_NEW_CLOCKS", "check_integrable")

#: Most clocks one update may add to one client (a clock is a character, an item or
#: a deleted range's length); past it the update is refused as implausible.
MAX_NEW_CLOCKS = 1 << 24
#: Yjs clocks and client ids are JavaScript numbers.
_MAX_SAFE = 2**53 - 1


def check_integrable(summary: UpdateSummary, state: Mapping[int, int]) -> None:
    """Raise MalformedMessage unless the document (``state``) can integrate all of the update."""
    sv = dict(state)
    if summary.structs and summary.skips_ahead_of(sv):
        raise MalformedMessage("the update skips changes the server does not have yet; reconnect to resync")
    if summary.missing_from(sv) is not None:
        raise MalformedMessage("the update depends on changes the server does not have; reconnect to resync")
    for client, added in summary.new_clocks(sv).items():
        if added > MAX_NEW_CLOCKS or summary.structs[client][1] > _MAX_SAFE:
            raise MalformedMessage(f"the update claims an implausible clock range for client {client}")
