"""Creating a workshop: one rule for the HTTP API and the CLI.

A new workshop is a fresh id, a facilitator id, the document's first update
(:func:`vmv_sync.schema.new_workshop`), an invite code in the access registry and
the facilitator's token. The API writes the document through the room (the durable
update path); the CLI, with no server in the process, appends it to the store. Both
pass their way of writing as ``write``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from .. import schema
from ..ids import new_id
from .auth import AccessRegistry
from .tokens import TokenIssuer

__all__ = ("NewWorkshop", "create_workshop", "join_link")

logger = logging.getLogger(__name__)

#: ``write(workshop_id, edit)`` runs ``edit(doc)`` on the new workshop's document, durably.
Writer = Callable[[str, Callable[[Doc[Any]], None]], Awaitable[None]]


def join_link(workshop_id: str, invite_code: str) -> str:
    """The page's join path for an invite: the workshop and the code, never a token."""
    return f"/?join={workshop_id}&code={invite_code}"


@dataclass(frozen=True)
class NewWorkshop:
    workshop_id: str
    facilitator_id: str
    name: str
    token: str
    invite_code: str

    @property
    def join_link(self) -> str:
        return join_link(self.workshop_id, self.invite_code)

    @property
    def facilitator_link(self) -> str:
        """Opens the workshop as its facilitator (the page moves the token out of the URL)."""
        return f"/w/{self.workshop_id}?token={self.token}"


async def create_workshop(
    *,
    title: str,
    name: str,
    values: Sequence[str],
    registry: AccessRegistry,
    tokens: TokenIssuer,
    write: Writer,
) -> NewWorkshop:
    """Create a workshop with ``name`` as its facilitator; raises InvalidAction for bad input."""
    workshop_id, facilitator_id = new_id(), new_id("f-")

    def edit(doc: Doc[Any]) -> None:
        schema.new_workshop(doc, title=title, facilitator_id=facilitator_id, facilitator_name=name, values=values)

    schema.new_workshop(Doc(), title=title, facilitator_id=facilitator_id, facilitator_name=name, values=values)  # validate first
    await write(workshop_id, edit)
    access = await registry.create(workshop_id, facilitator_id)
    token = tokens.issue(workshop_id, facilitator_id, name, "facilitator")
    logger.info("workshop=%s created by %s (%d values)", workshop_id, facilitator_id, len(values))
    return NewWorkshop(workshop_id, facilitator_id, name, token, access.invite_code)
