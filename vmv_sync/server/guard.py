"""The write guard: ownership rules enforced on the content of CRDT updates.

A Yjs update is opaque bytes; what it changes is only known by applying it. The
guard keeps a shadow copy of the room's document, applies each incoming update
there first, turns the shadow's deep events into :class:`Change` records and
checks them against :mod:`vmv_sync.schema.ownership`. Only an update that passes
is applied to the room's document, stored and relayed; a refused one is never
seen by anyone, and the shadow (now holding it) is rebuilt from the room's
document. The cost on the update path is one extra apply plus the event
wrappers (see bench/bench_guard.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pycrdt import ArrayEvent, Doc, Map, MapEvent, TextEvent

from ..errors import Forbidden, MalformedMessage
from ..protocol import decode_state_vector
from ..protocol.update import UpdateSummary, is_panic, summarize_update
from ..schema import ROOTS
from ..schema.ownership import Change, check_change
from .auth import Principal

__all__ = ("WriteGuard",)


class WriteGuard:
    """Checks updates against the ownership rules before the room applies them."""

    def __init__(self, doc: Doc[Any]) -> None:
        self._room_doc = doc
        self._changes: list[Change] = []
        self._error: BaseException | None = None
        self._build()

    def _build(self) -> None:
        self._shadow: Doc[Any] = Doc()
        self._shadow.apply_update(self._room_doc.get_update())
        self._roots: list[Any] = []
        self._subscriptions: list[Any] = []
        for name, kind in ROOTS.items():
            root = self._shadow.get(name, type=kind)
            self._roots.append(root)  # a subscription lives as long as its root wrapper
            self._subscriptions.append(root.observe_deep(self._collector(name)))

    def _collector(self, name: str) -> Any:
        def collect(events: list[Any], *_: Any) -> None:
            try:
                for event in events:
                    self._changes.append(_to_change(name, event))
            except Exception as exc:  # never raise inside pycrdt's commit
                self._error = exc

        return collect

    def check(self, update: bytes, principal: Principal, summary: UpdateSummary | None = None) -> None:
        """Apply ``update`` to the shadow if ``principal`` may write all of it; else raise."""
        summary = summary or summarize_update(update)
        role = principal.role
        if summary.subdocs:
            raise Forbidden("sub-documents are not part of the workshop document")
        if role != "facilitator" and summary.roots - set(ROOTS):
            raise Forbidden(f"only the facilitator may write the root {sorted(summary.roots - set(ROOTS))[0]!r}")
        for root, keyed in summary.root_items:
            kind = ROOTS.get(root)
            if kind is not None and keyed != (kind is Map):
                # a sequence item under a Map root, or a keyed one under an Array or Text:
                # stored and relayed, yet no reader shows it (and no event reports it)
                shape = "keyed entries" if keyed else "sequence items"
                raise Forbidden(f"the root {root!r} holds no {shape}")
        self._changes.clear()
        self._error = None
        try:
            self._shadow.apply_update(update)
        except Exception as exc:  # undecodable: pycrdt raises before changing anything
            raise MalformedMessage("the update could not be applied to the document") from exc
        except BaseException as exc:
            if not is_panic(exc):
                raise
            self.rebuild()  # a panic may leave part of the update in the shadow
            raise MalformedMessage("the update could not be applied to the document") from None
        try:
            pending_possible = summary.structs or summary.deletes
            if pending_possible and not summary.integrated_in(decode_state_vector(self._shadow.get_state())):
                raise MalformedMessage(
                    "the update depends on changes the server does not have; resync first"
                )
            if self._error is not None:
                raise Forbidden("the update could not be checked") from self._error
            for change in self._changes:
                reason = check_change(change, principal.participant_id, role)
                if reason is not None:
                    raise Forbidden(reason)
        except (Forbidden, MalformedMessage):
            self.rebuild()
            raise

    def accept(self, update: bytes) -> None:
        """Mirror an update that needs no check (the server's own edits)."""
        self._shadow.apply_update(update)

    def rebuild(self) -> None:
        """Drop the shadow (it may hold a refused update) and copy the room's document."""
        self._build()


def _to_change(root: str, event: Any) -> Change:
    """The event as a Change. Inserted shared types stay live pycrdt objects: the rules
    read one field of them (``author``, ``role``) with ``.get``, and converting each to
    plain data first was most of the guard's cost on large updates."""
    path = tuple(event.path)
    if isinstance(event, MapEvent):
        keys: dict[str, Any] = {}
        deleted: set[str] = set()
        for key, info in event.keys.items():  # type: ignore[attr-defined]
            if info.get("action") == "delete":
                deleted.add(key)
            else:
                keys[key] = info.get("newValue")
        return Change(root, path, "map", keys=keys, deleted_keys=frozenset(deleted))
    if isinstance(event, (ArrayEvent, TextEvent)):
        inserted: list[Any] = []
        removed = 0
        for op in event.delta:  # type: ignore[union-attr]
            if "insert" in op:
                value = op["insert"]
                if isinstance(value, list):
                    inserted.extend(value)
                else:
                    inserted.append(value)
            removed += int(op.get("delete", 0))
        kind: Literal["array", "text"] = "array" if isinstance(event, ArrayEvent) else "text"
        return Change(root, path, kind, inserted=tuple(inserted), deleted=removed)
    raise Forbidden(f"unsupported change of type {type(event).__name__}")
