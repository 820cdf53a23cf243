"""Typed workshop actions of the client, built on :mod:`vmv_sync.schema`.

Every action is recorded as an intent (client/intents.py) and, unless it must be
held, applies to the local replica, commits its update with the intent to the
local store, and (when connected) sends it, all before it returns; offline the same
call just leaves the edit pending until the next connection. Arguments that would
differ on a replay are resolved here, at call time: message ids, timestamps, and a
toggle becomes select or deselect as the user saw it. Actions that act "as
someone" use the client's own ``participant_id``. They raise
:class:`~vmv_sync.schema.InvalidAction` before writing anything when the arguments
or the document state do not allow them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..schema import Choice, normalize_value_name
from .document import LiveDocument
from .intents import Intent

__all__ = ("WorkshopActions",)


class WorkshopActions:
    """The workshop actions, as awaitable methods: each records an intent and acts on it.

    A stateless base of :class:`~vmv_sync.client.WorkshopClient`: every action
    becomes an :class:`~vmv_sync.client.intents.Intent` handed to the client's
    :class:`~vmv_sync.client.document.LiveDocument` (``_document``), acting as
    ``participant_id`` (with ``name`` and ``role``). A base rather than twenty
    forwarding methods on the client, so that the public surface stays one object.
    """

    participant_id: str
    name: str
    role: str
    _document: LiveDocument

    async def _do(self, name: str, *args: Any, **kwargs: Any) -> None:
        await self._document.act(Intent(name, args, kwargs))

    # -- joining and facilitation ------------------------------------------------

    async def create_workshop(
        self, title: str, *, values: Sequence[str] = (), max_values: int = 10
    ) -> None:
        """Write a new workshop's meta, with this client as its facilitator.

        The facilitator's containers are the server's to create (docs/client.md).
        """
        await self._do(
            "start_workshop", title=title, facilitator_id=self.participant_id, facilitator_name=self.name,
            values=list(values), max_values=max_values, now=time.time(),
        )  # fmt: skip

    async def join(self) -> None:
        """Add (or update) this client's participant entry with its name and role.

        Only the entry: the server creates the participant's containers when it arrives.
        """
        await self.add_participant(self.participant_id, self.name, self.role)

    async def add_participant(self, pid: str, name: str, role: str = "participant") -> None:
        await self._do("add_participant", pid, name, role, time.time(), containers=False)

    async def set_stage(self, stage: str) -> None:
        """Move the workshop to ``stage`` (the facilitator's call)."""
        await self._do("set_stage", stage)

    async def set_catalogue(self, values: Sequence[str]) -> None:
        await self._do("set_catalogue", values if isinstance(values, str) else list(values))

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
        opts = options if isinstance(options, str) else list(options)
        await self._do("open_ballot", ballot_id, question, opts, stage=stage, kind=kind, max_choices=max_choices)

    async def close_ballot(self, ballot_id: str) -> None:
        await self._do("close_ballot", ballot_id)

    # -- a participant's own entries --------------------------------------------------

    async def post_message(
        self, text: str, *, stage: str | None = None, message_id: str | None = None
    ) -> str:
        """Append a chat message by this participant; returns its id."""
        mid = uuid.uuid4().hex if message_id is None else message_id
        await self._do("post_message", self.participant_id, text, stage=stage, message_id=mid, now=time.time())
        return mid

    async def toggle_value(self, value: str) -> bool:
        """Select or deselect a value as the local view shows it; returns whether it is now selected."""
        key = normalize_value_name(value) if isinstance(value, str) else None
        mine = self._document.my_selection()
        selected = key is not None and any(normalize_value_name(v) == key for v in mine)
        if selected:
            await self.deselect_value(value)
        else:
            await self._do("select_value", self.participant_id, value, time.time())
        return not selected

    async def select_value(self, value: str) -> None:
        await self._do("select_value", self.participant_id, value, time.time())

    async def deselect_value(self, value: str) -> None:
        await self._do("deselect_value", self.participant_id, value)

    async def cast_vote(self, ballot_id: str, choice: Choice | list[str]) -> None:
        await self._do("cast_vote", ballot_id, self.participant_id, list(choice) if isinstance(choice, tuple) else choice)

    async def retract_vote(self, ballot_id: str) -> None:
        await self._do("retract_vote", ballot_id, self.participant_id)

    async def rate_value(self, value: str, importance: int, practice: int) -> None:
        await self._do("rate_value", self.participant_id, value, importance, practice)

    async def set_progress(self, stage: str, completed: Sequence[str] | None = None) -> None:
        done = None if completed is None else (completed if isinstance(completed, str) else list(completed))
        await self._do("set_progress", self.participant_id, stage, done, time.time())

    # -- texts ----------------------------------------------------------------------

    async def set_draft(self, text: str) -> None:
        await self._do("set_draft", self.participant_id, text)

    async def edit_draft(self, index: int, *, delete: int = 0, insert: str = "") -> None:
        await self._do("edit_draft", self.participant_id, index, delete=delete, insert=insert)

    async def set_mission(self, text: str) -> None:
        await self._do("set_mission", text)

    async def edit_mission(self, index: int, *, delete: int = 0, insert: str = "") -> None:
        await self._do("edit_mission", index, delete=delete, insert=insert)

    async def set_vision(self, text: str) -> None:
        await self._do("set_vision", text)

    async def edit_vision(self, index: int, *, delete: int = 0, insert: str = "") -> None:
        await self._do("edit_vision", index, delete=delete, insert=insert)
