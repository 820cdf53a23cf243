"""Admission of one update, before it touches the document: the checks, in their order.

:func:`check_incoming` runs them for the room (rooms.py, ``Room._admit``): the
sender's work budget -> readable -> integrable (no gap, no missing dependency, a
plausible clock range) -> the placement work it may cause -> client ids owned by the
sender -> the quota it may use. The write rules (the guard's shadow) follow in the
room, because they apply the update. Every refusal is a :class:`CloseError` that closes
the sender only; the first three hold with authentication off too: they are what makes
"saved" mean "in the document". Kept apart from the room so that every fair-share
rule about an update's size reads in one place (docs/security.md, "Limits").
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from ..config import Settings
from ..errors import MessageTooLarge
from ..protocol.update import UpdateSummary, summarize_update
from ..schema import ROOTS
from .auth import Principal
from .budgets import Budget
from .clientids import ClientIds
from .connection import Connection
from .integrity import check_integrable

__all__ = ("check_incoming", "check_quota", "check_work", "largest_sequence")

#: the sequence roots (arrays and texts), whose length bounds one item's placement
_SEQUENCE_ROOTS = tuple((name, kind) for name, kind in ROOTS.items() if kind is not Map)


def largest_sequence(doc: Doc[Any]) -> int:
    """The length of the document's largest sequence root: what one placement may scan."""
    return max(len(doc.get(name, type=kind)) for name, kind in _SEQUENCE_ROOTS)


def check_work(summary: UpdateSummary, sequence_size: int, settings: Settings) -> None:
    """Refuse an update whose placement could stall the loop (issue 19, finding 1).

    One costly item (a message from a new device, an edit on an existing item)
    always passes: its cost is bounded by the document's size, which the quota bounds.
    """
    cost = summary.placement_cost(sequence_size)
    limit = settings.max_update_work
    if cost > limit and cost > sequence_size:
        raise MessageTooLarge(
            f"the update would cost the server about {cost} placement steps (limit {limit}); "
            "send it in smaller parts"
        )


def check_quota(settings: Settings, principal: Principal, budget: Budget | None, total: int, size: int) -> None:
    """The workshop quota, with a share per participant and a reserve for the facilitator.

    ``total`` is what the workshop would store with this update of ``size`` bytes. The
    quota counts what is stored (a compaction gives bytes back). Participants stop at
    ``1 - facilitator_quota_reserve`` of it and at their own share, so no one of them
    can make the workshop read-only for the others or its facilitator.
    """
    quota = settings.workshop_quota_bytes
    if not quota:
        return
    if principal.role == "facilitator":
        if total > quota:
            raise MessageTooLarge(f"the workshop has reached its storage quota of {quota} bytes")
        return
    if total > quota * (1 - settings.facilitator_quota_reserve):
        raise MessageTooLarge("the workshop is nearly full: only its facilitator can still write; ask the facilitator")
    share = int(quota * settings.participant_quota_share)
    if budget is not None and budget.written + size > share:
        raise MessageTooLarge(
            f"you have written your share ({share} bytes) of this workshop's storage; ask the facilitator"
        )


def check_incoming(
    update: bytes,
    conn: Connection,
    state: dict[int, int],
    *,
    settings: Settings,
    client_ids: ClientIds,
    sequence_size: int,
    stored_total: int,
) -> tuple[UpdateSummary, dict[int, str]]:
    """Every check of ``update`` from ``conn`` before it is applied (module docstring).

    ``stored_total`` is what the workshop holds with this update (committed and
    admitted in the current batch); returns the update's summary and the client-id
    claims it makes, which the room records once the update is applied.
    """
    principal, budget = conn.principal, conn.budget
    if budget is not None:
        budget.work.check()
    summary = summarize_update(update)
    check_integrable(summary, state)
    check_work(summary, sequence_size, settings)
    claims: dict[int, str] = {}
    if principal.authenticated and principal.participant_id is not None:
        claims = client_ids.check(summary, state, principal.participant_id)
        check_quota(settings, principal, budget, stored_total, len(update))
    return summary, claims
