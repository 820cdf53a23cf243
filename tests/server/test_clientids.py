"""In-process tests of :class:`vmv_sync.server.clientids.ClientIds`, who owns each Yjs client id.

Updates are real ones (pycrdt documents with a fixed client id), summarised by the
same reader the room uses; the over-the-wire attacks are in test_integrity.py.
"""

from __future__ import annotations

import random

import pytest
from pycrdt import Doc, Text

from vmv_sync.errors import ClientIdTaken
from vmv_sync.protocol.update import UpdateSummary, summarize_update
from vmv_sync.server.clientids import SERVER_OWNER, ClientIds


def edits(client_id: int, *texts: str) -> tuple[list[UpdateSummary], dict[int, int]]:
    """One summary per edit of a document written under ``client_id``, and its final clocks."""
    doc: Doc = Doc(client_id=client_id)
    text = doc.get("mission", type=Text)
    summaries, before = [], doc.get_state()
    for chunk in texts:
        text += chunk
        summaries.append(summarize_update(doc.get_update(before)))
        before = doc.get_state()
    return summaries, {client_id: len("".join(texts))}


def test_the_first_writer_from_clock_zero_owns_an_id_once_claimed() -> None:
    ids = ClientIds()
    (first, second), _ = edits(7, "ab", "cd")
    claims = ids.check(first, {}, "ann")
    assert claims == {7: "ann"} and ids.owner(7) is None  # checked, not yet claimed
    ids.claim(claims)
    assert ids.owner(7) == "ann" and len(ids) == 1
    assert ids.take_pending() == {7: "ann"} and ids.take_pending() == {}
    assert ids.check(second, {7: 2}, "ann") == {}  # its own id: nothing new to claim
    with pytest.raises(ClientIdTaken):
        ids.check(second, {7: 2}, "bob")


def test_duplicates_pass_and_unowned_ids_with_clocks_stay_unclaimable() -> None:
    (first,), state = edits(9, "xyz")
    ids = ClientIds({9: "ann"})
    assert ids.check(first, state, "bob") == {}  # the document has it all: a resend
    loose = ClientIds()
    (_, later), _ = edits(11, "a", "b")
    with pytest.raises(ClientIdTaken):  # written before ownership was recorded
        loose.check(later, {11: 1}, "bob")


def test_announcing_an_id_claims_it_unless_it_is_anothers() -> None:
    ids = ClientIds({1: "ann"})
    assert ids.check_announced([1, 2, 3], {3: 5}, "ann") == {2: "ann"}  # 3 has clocks, no owner
    with pytest.raises(ClientIdTaken):
        ids.check_announced([1], {}, "bob")
    ids.claim({2: "ann", 1: "bob"})  # a claim never replaces an owner
    assert ids.owner(1) == "ann" and ids.unwritten("ann", {1: 4}) == 1


def test_a_fresh_server_id_is_free_and_claimed_for_the_server() -> None:
    ids = ClientIds({5: "ann"})
    server_id = ids.fresh_server_id({6: 1}, random.Random(0))
    assert server_id not in (5, 6) and ids.owner(server_id) == SERVER_OWNER
    assert ids.take_pending() == {server_id: SERVER_OWNER}
