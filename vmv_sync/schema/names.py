"""Value-name comparison and the deterministic choice of a display spelling.

Participants type value names freely, so "Honesty", "  honesty" and "HONESTY" must
count as one value (contract section 4). Every replica must also show the same
spelling for that value, whatever order its updates arrived in, so the display
name is chosen by a rule over the set of spellings, never by arrival order.

Rules (also in docs/derived-state.md):

* comparison key: ``normalize_value_name(s)`` = strip surrounding whitespace, Unicode
  NFC, ``str.casefold()``, then NFC again (casefolding can denormalise a few
  characters, and NFC after casefold makes NFC and NFD inputs collide);
* display spelling of one key: the tidied spelling (strip + NFC, case kept) given
  by the catalogue if the catalogue has one (its first such entry in array order);
  otherwise the spelling used by the most participants, ties broken by the
  smallest spelling in code-point order.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

__all__ = ("normalize_value_name", "tidy_value_name", "choose_display_name")


def tidy_value_name(name: str) -> str:
    """Strip surrounding whitespace and apply Unicode NFC, keeping the case.

    This is the spelling shown to people: NFC so that equal-looking names are equal
    strings, case kept because "Trust" and "trust" are a user's choice.
    """
    return unicodedata.normalize("NFC", name.strip())


def normalize_value_name(name: str) -> str:
    """The comparison key of a value name: trimmed, NFC, casefolded.

    Example:
        >>> normalize_value_name("  Honesty ") == normalize_value_name("HONESTY")
        True
    """
    return unicodedata.normalize("NFC", tidy_value_name(name).casefold())


def choose_display_name(
    spellings: Mapping[str, int],
    catalogue: Sequence[str] = (),
) -> str:
    """Pick the display spelling of one value.

    Args:
        spellings: tidied spelling -> number of participants who used it; all share
            one comparison key.
        catalogue: the catalogue entries with that same key, in array order.

    The first catalogue entry wins, because the facilitator's wording is the one
    people were shown. Otherwise the spelling with the most participants wins and
    ties go to the smallest string in code-point order, the same on every replica.

    Example:
        >>> choose_display_name({"honesty": 2, "Honesty": 2})
        'Honesty'
    """
    if catalogue:
        return tidy_value_name(catalogue[0])
    if not spellings:
        raise ValueError("choose_display_name needs a spelling or a catalogue entry")
    return min(spellings, key=lambda s: (-spellings[s], s))
