"""Typed actions as data: what the user meant, replayable on another document.

Every action method of the client is recorded as an :class:`Intent` (an action
name and JSON arguments, resolved at call time: message ids, timestamps, a toggle
turned into select or deselect as the user saw it), stored beside its pending-log row.
Two things need it:

* **Held intents.** Some actions write into a nested container (a participant's
  ``selections``/``matrix`` Map or ``drafts`` Text, a ballot's ``votes`` Map) that
  only the server creates: two replicas creating the same one concurrently keep
  one of them, and whatever was written into the other is lost. A replica that has
  not synced yet cannot know whether it exists, so an action whose container is
  absent is not applied: it is held (durably) and applied once the container
  arrives from the server.
* **Re-making edits.** After the server refuses our client id, or one of our
  edits, the pending edits are re-made on a rebuilt document under a fresh client
  id by replaying their intents (client/recovery.py).

Edits made with ``client.edit(fn)`` have no intent: they cannot be held nor re-made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map, Text

from .. import schema
from ..errors import ClientError
from ..schema import actions as schema_actions

__all__ = ("Intent", "ACTIONS", "Container", "container_of", "missing", "apply_intent", "validate_on_scratch")

#: (root name, key, type) of the nested container an action writes into
Container = tuple[str, str, type]


@dataclass(frozen=True)
class Intent:
    """One typed action: ``ACTIONS[name](doc, *args, **kwargs)``; JSON-serialisable."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "args": list(self.args), "kwargs": self.kwargs}

    @classmethod
    def from_json(cls, data: Any) -> Intent:
        if not isinstance(data, dict) or data.get("name") not in ACTIONS:
            raise ClientError(f"not a stored intent: {data!r}")
        return cls(str(data["name"]), tuple(data.get("args") or ()), dict(data.get("kwargs") or {}))

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True).encode()

    def describe(self) -> str:
        """A short human form for logs and refusal records, e.g. ``set_stage('values-matrix')``."""
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in sorted(self.kwargs.items()) if k != "now"]
        text = f"{self.name}({', '.join(parts)})"
        return text if len(text) <= 120 else text[:117] + "..."


def _selections(args: tuple[Any, ...]) -> Container:
    return ("selections", str(args[0]), Map)


def _matrix(args: tuple[Any, ...]) -> Container:
    return ("matrix", str(args[0]), Map)


def _draft(args: tuple[Any, ...]) -> Container:
    return ("drafts", str(args[0]), Text)


def _votes(args: tuple[Any, ...]) -> Container:
    return ("votes", str(args[0]), Map)


_Locator = Callable[[tuple[Any, ...]], Container] | None

#: action name -> (schema function, the container it needs or None)
ACTIONS: dict[str, tuple[Callable[..., Any], _Locator]] = {
    "start_workshop": (schema_actions.start_workshop, None),
    "add_participant": (schema.add_participant, None),
    "set_stage": (schema.set_stage, None),
    "set_catalogue": (schema.set_catalogue, None),
    "open_ballot": (schema.open_ballot, None),
    "close_ballot": (schema.close_ballot, None),
    "post_message": (schema.post_message, None),
    "select_value": (schema.select_value, _selections),
    "deselect_value": (schema.deselect_value, _selections),
    "cast_vote": (schema.cast_vote, _votes),
    "retract_vote": (schema.retract_vote, _votes),
    "rate_value": (schema.rate_value, _matrix),
    # A whole record: two first writes racing leave one complete record.
    "set_progress": (schema.set_progress, None),
    "set_draft": (schema.set_draft, _draft),
    "edit_draft": (schema.edit_draft, _draft),
    "set_mission": (schema.set_mission, None),
    "edit_mission": (schema.edit_mission, None),
    "set_vision": (schema.set_vision, None),
    "edit_vision": (schema.edit_vision, None),
}


def container_of(intent: Intent) -> Container | None:
    """The nested container ``intent`` writes into, if any."""
    locate = ACTIONS[intent.name][1]
    return locate(intent.args) if locate is not None else None


def missing(doc: Doc[Any], intent: Intent) -> Container | None:
    """The container ``intent`` needs and ``doc`` lacks (None: it can be applied now)."""
    where = container_of(intent)
    if where is None:
        return None
    root, key, kind = where
    roots = schema.bind_roots(doc)
    return None if isinstance(getattr(roots, root).get(key), kind) else where


def apply_intent(doc: Doc[Any], intent: Intent) -> Any:
    """Run the action on ``doc`` (one transaction); returns the action's result."""
    fn = ACTIONS[intent.name][0]
    return fn(doc, *intent.args, **intent.kwargs)


def validate_on_scratch(doc: Doc[Any], intent: Intent, container: Container | None) -> None:
    """Raise InvalidAction if ``intent`` would be refused, without touching ``doc``.

    A held action must be refused at call time like any other, so it runs on a
    throw-away copy of ``doc`` in which its missing container is created empty:
    exactly what the user sees (an absent container reads as empty).
    """
    scratch: Doc[Any] = Doc()
    scratch.apply_update(doc.get_update())
    if container is not None:
        root, key, kind = container
        getattr(schema.bind_roots(scratch), root)[key] = kind()
    apply_intent(scratch, intent)
