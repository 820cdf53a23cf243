"""The one rule for workshop ids (contract section 2), shared by server, client and CLI,
and the minting of new ids within it."""

from __future__ import annotations

import re
import secrets

__all__ = ("ID_RULE", "WORKSHOP_ID_RE", "is_workshop_id", "new_id")

#: The rule, as the sentence every error about an id uses.
ID_RULE = "use 1 to 64 characters of A-Z a-z 0-9 _ -"
#: Workshop (and participant) ids: 1 to 64 characters of A-Z a-z 0-9 _ -.
WORKSHOP_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_workshop_id(value: object) -> bool:
    """Whether ``value`` is a valid workshop id.

    Example:
        >>> is_workshop_id("w-1"), is_workshop_id("no spaces")
        (True, False)
    """
    return isinstance(value, str) and WORKSHOP_ID_RE.fullmatch(value) is not None


def new_id(prefix: str = "") -> str:
    """A random workshop or participant id within the contract's ``[A-Za-z0-9_-]``."""
    return prefix + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")
