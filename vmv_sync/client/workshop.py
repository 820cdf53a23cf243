"""Typed workshop actions of the client, built on :mod:`vmv_sync.schema`.

Every action applies to the local replica, commits the resulting update to the
local store, and (when connected) sends it, all before it returns; offline the
same call just leaves the edit pending until the next connection. Actions that
act "as someone" use the client's own ``participant_id``. They raise
:class:`~vmv_sync.schema.InvalidAction` before writing anything when the
arguments or the document state do not allow them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pycrdt import Doc

from .. import schema
from ..schema import Choice

__all__ = ("WorkshopActions",)

T = TypeVar("T")


class WorkshopActions:
    """Mixin: the workshop actions, as awaitable methods. Needs ``edit`` and ``participant_id``."""

    participant_id: str
    name: str
    role: str

    async def edit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # pragma: no cover
        raise NotImplementedError

    # -- joining and facilitation ------------------------------------------------

    async def create_workshop(
        self, title: str, *, values: Sequence[str] = (), max_values: int = 10
    ) -> None:
        """Write a new workshop's meta, with this client as its facilitator."""

        def run(doc: Doc[Any]) -> None:
            schema.new_workshop(
                doc,
                title=title,
                facilitator_id=self.participant_id,
                facilitator_name=self.name,
                values=values,
                max_values=max_values,
            )

        await self.edit(run)

    async def join(self) -> None:
        """Add (or update) this client's participant entry with its name and role."""
        await self.edit(schema.add_participant, self.participant_id, self.name, self.role)

    async def add_participant(self, pid: str, name: str, role: str = "participant") -> None:
        await self.edit(schema.add_participant, pid, name, role)

    async def set_stage(self, stage: str) -> None:
        """Move the workshop to ``stage`` (the facilitator's call)."""
        await self.edit(schema.set_stage, stage)

    async def set_catalogue(self, values: Sequence[str]) -> None:
        await self.edit(schema.set_catalogue, values)

    async def open_ballot(
        self,
        ballot_id: str,
        question: str,
        options: Sequence[str],
        *,
        stage: str,
        kind: str = "single",
        max_choices: int = 1,
    ) -> None:
        await self.edit(
            schema.open_ballot,
            ballot_id,
            question,
            options,
            stage=stage,
            kind=kind,
            max_choices=max_choices,
        )

    async def close_ballot(self, ballot_id: str) -> None:
        await self.edit(schema.close_ballot, ballot_id)

    # -- a participant's own entries --------------------------------------------------

    async def post_message(
        self, text: str, *, stage: str | None = None, message_id: str | None = None
    ) -> str:
        """Append a chat message by this participant; returns its id."""
        return await self.edit(
            schema.post_message, self.participant_id, text, stage=stage, message_id=message_id
        )

    async def toggle_value(self, value: str) -> bool:
        """Select or deselect a value; returns whether it is now selected."""
        return await self.edit(schema.toggle_value, self.participant_id, value)

    async def select_value(self, value: str) -> None:
        await self.edit(schema.select_value, self.participant_id, value)

    async def deselect_value(self, value: str) -> None:
        await self.edit(schema.deselect_value, self.participant_id, value)

    async def cast_vote(self, ballot_id: str, choice: Choice | list[str]) -> None:
        await self.edit(schema.cast_vote, ballot_id, self.participant_id, choice)

    async def retract_vote(self, ballot_id: str) -> None:
        await self.edit(schema.retract_vote, ballot_id, self.participant_id)

    async def rate_value(self, value: str, importance: int, practice: int) -> None:
        await self.edit(schema.rate_value, self.participant_id, value, importance, practice)

    async def set_progress(self, stage: str, completed: Sequence[str] | None = None) -> None:
        await self.edit(schema.set_progress, self.participant_id, stage, completed)

    # -- texts ----------------------------------------------------------------------

    async def set_draft(self, text: str) -> None:
        await self.edit(schema.set_draft, self.participant_id, text)

    async def edit_draft(self, index: int, *, delete: int = 0, insert: str = "") -> None:
        await self.edit(schema.edit_draft, self.participant_id, index, delete=delete, insert=insert)

    async def set_mission(self, text: str) -> None:
        await self.edit(schema.set_mission, text)

    async def edit_mission(self, index: int, *, delete: int = 0, insert: str = "") -> None:
        await self.edit(schema.edit_mission, index, delete=delete, insert=insert)

    async def set_vision(self, text: str) -> None:
        await self.edit(schema.set_vision, text)

    async def edit_vision(self, index: int, *, delete: int = 0, insert: str = "") -> None:
        await self.edit(schema.edit_vision, index, delete=delete, insert=insert)
