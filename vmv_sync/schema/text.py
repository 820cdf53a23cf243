"""Text editing for the mission, the vision and each participant's draft.

pycrdt's ``Text`` counts positions in UTF-8 bytes (the yrs default), while Python
and people count characters; these helpers take character positions and convert,
so an emoji or an accented letter never gets split. Replacing a whole text is
done as the smallest single edit (common prefix and suffix kept), so a concurrent
edit elsewhere in the text survives.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from vmv_sync.schema.document import InvalidAction, Roots, bind_roots

__all__ = (
    "MAX_TEXT_CHARS",
    "edit_text",
    "replace_text",
    "set_draft",
    "edit_draft",
    "set_mission",
    "edit_mission",
    "set_vision",
    "edit_vision",
)


Target = Doc[Any] | Roots

#: The longest a mission, a vision or a draft may grow, in characters. At most 4 UTF-8
#: bytes each, a whole text in one update stays well under the server's 1 MiB message
#: limit, so an honest paste is refused here with a clear message instead of being
#: refused by the server (4413) and re-sent on every reconnect (issue 19, finding 6).
#: The page's text boxes hold the same limit.
MAX_TEXT_CHARS = 100_000


def _byte_offset(s: str, index: int) -> int:
    return len(s[:index].encode("utf-8"))


def edit_text(text: Text, index: int, *, delete: int = 0, insert: str = "") -> None:
    """Delete ``delete`` characters at character ``index`` of ``text``, then insert ``insert``.

    Raises:
        InvalidAction: the range is outside the text or the arguments have wrong types.

    Example:
        >>> doc = Doc(); t = doc.get("t", type=Text); t += "héllo"
        >>> edit_text(t, 1, delete=1, insert="e")
        >>> str(t)
        'hello'
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidAction(f"text index must be an int, not {index!r}")
    if isinstance(delete, bool) or not isinstance(delete, int):
        raise InvalidAction(f"delete count must be an int, not {delete!r}")
    if not isinstance(insert, str):
        raise InvalidAction(f"inserted text must be a string, not {insert!r}")
    with text.doc.transaction():
        current = str(text)
        if index < 0 or delete < 0 or index + delete > len(current):
            raise InvalidAction(
                f"edit at {index} deleting {delete} is outside a text of {len(current)} characters"
            )
        length = len(current) - delete + len(insert)
        if len(insert) > delete and length > MAX_TEXT_CHARS:
            raise InvalidAction(
                f"the text would be {length} characters long, over the limit of {MAX_TEXT_CHARS}; shorten it"
            )
        start = _byte_offset(current, index)
        if delete:
            end = _byte_offset(current, index + delete)
            del text[start:end]
        if insert:
            text.insert(start, insert)


def replace_text(text: Text, new: str) -> None:
    """Make ``text`` read ``new`` with one minimal edit (common prefix and suffix kept)."""
    if not isinstance(new, str):
        raise InvalidAction(f"text must be a string, not {new!r}")
    with text.doc.transaction():
        old = str(text)
        if old == new:
            return
        prefix = 0
        limit = min(len(old), len(new))
        while prefix < limit and old[prefix] == new[prefix]:
            prefix += 1
        suffix = 0
        while (
            suffix < limit - prefix
            and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]
        ):
            suffix += 1
        edit_text(
            text,
            prefix,
            delete=len(old) - prefix - suffix,
            insert=new[prefix : len(new) - suffix],
        )


def _require_pid(pid: object) -> str:
    if not isinstance(pid, str) or not pid:
        raise InvalidAction(f"participant id must be a non-empty string, not {pid!r}")
    return pid


def _draft(roots: Roots, pid: str) -> Text:
    draft = roots.drafts.get(pid)
    if not isinstance(draft, Text):
        roots.drafts[pid] = Text()
        draft = roots.drafts[pid]
    return draft


def set_draft(doc: Target, pid: str, text: str) -> None:
    """Make ``pid``'s mission draft read ``text`` (a minimal edit of the existing Text)."""
    _require_pid(pid)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        replace_text(_draft(roots, pid), text)


def edit_draft(doc: Target, pid: str, index: int, *, delete: int = 0, insert: str = "") -> None:
    """Delete ``delete`` characters at ``index`` of ``pid``'s draft, then insert ``insert``."""
    _require_pid(pid)
    roots = bind_roots(doc)
    with roots.doc.transaction():
        edit_text(_draft(roots, pid), index, delete=delete, insert=insert)


def set_mission(doc: Target, text: str) -> None:
    """Make the shared mission statement read ``text`` (a minimal edit)."""
    roots = bind_roots(doc)
    with roots.doc.transaction():
        replace_text(roots.mission, text)


def edit_mission(doc: Target, index: int, *, delete: int = 0, insert: str = "") -> None:
    """Edit the shared mission statement at ``index`` (in characters)."""
    roots = bind_roots(doc)
    with roots.doc.transaction():
        edit_text(roots.mission, index, delete=delete, insert=insert)


def set_vision(doc: Target, text: str) -> None:
    """Make the shared vision statement read ``text`` (a minimal edit)."""
    roots = bind_roots(doc)
    with roots.doc.transaction():
        replace_text(roots.vision, text)


def edit_vision(doc: Target, index: int, *, delete: int = 0, insert: str = "") -> None:
    """Edit the shared vision statement at ``index`` (in characters)."""
    roots = bind_roots(doc)
    with roots.doc.transaction():
        edit_text(roots.vision, index, delete=delete, insert=insert)
