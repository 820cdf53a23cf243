"""Property: incremental derived state equals a full recompute, and replicas converge.

Random workshop actions by random participants run on 2-3 replicas that exchange
updates at random moments. After every step each replica's DerivedTracker must
equal compute_state on the same doc; after a final full sync every replica's
to_json() must be identical.

Budget: sized for CI (well under 30 s) under hypothesis' default profile; load any
other profile (``--hypothesis-profile=NAME``) and its ``max_examples`` is used.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map

import vmv_sync.schema as schema
from vmv_sync.derived import DerivedTracker, compute_state
from vmv_sync.schema import InvalidAction, bind_roots

PIDS = ("f", "p1", "p2", "p3", "o")
VALUES = ("Honesty", " honesty", "HONESTY", "Trust", "trust ", "Café",
          unicodedata.normalize("NFD", "café"), "Growth")  # fmt: skip
BALLOTS = ("b1", "b2")
OPTIONS = ("A", "B", "C")

_BUDGET = 150 if settings.get_current_profile_name() == "default" else settings().max_examples

pids = st.sampled_from(PIDS)
values = st.sampled_from(VALUES)
ballots = st.sampled_from(BALLOTS)
scores = st.integers(1, 5)

steps = st.one_of(
    st.tuples(st.just("participant"), pids, st.sampled_from(schema.ROLES)),
    st.tuples(st.just("toggle"), pids, values),
    st.tuples(st.just("open"), ballots, st.sampled_from(("single", "multi"))),
    st.tuples(st.just("close"), ballots),
    st.tuples(st.just("vote"), ballots, pids,
              st.one_of(st.sampled_from(OPTIONS), st.lists(st.sampled_from(OPTIONS), max_size=3))),
    st.tuples(st.just("rate"), pids, values, scores, scores),
    st.tuples(st.just("progress"), pids, st.sampled_from(schema.STAGES)),
    st.tuples(st.just("catalogue"), st.lists(values, max_size=3)),
    st.tuples(st.just("garbage"), pids, st.sampled_from(("selection", "rating", "vote", "participant"))),
    st.tuples(st.just("message"), pids),
)  # fmt: skip


def apply_step(doc: Doc[Any], step: tuple[Any, ...], now: float) -> None:
    """Run one random action; refused actions (InvalidAction) are part of the game."""
    kind, *args = step
    try:
        if kind == "participant":
            schema.add_participant(doc, args[0], args[0].upper(), args[1], now=now)
        elif kind == "toggle":
            schema.toggle_value(doc, args[0], args[1], now=now)
        elif kind == "open":
            max_choices = 2 if args[1] == "multi" else 1
            schema.open_ballot(doc, args[0], "Q", list(OPTIONS), stage="values-collective",
                               kind=args[1], max_choices=max_choices)  # fmt: skip
        elif kind == "close":
            schema.close_ballot(doc, args[0])
        elif kind == "vote":
            schema.cast_vote(doc, args[0], args[1], args[2])
        elif kind == "rate":
            schema.rate_value(doc, *args)
        elif kind == "progress":
            schema.set_progress(doc, args[0], args[1], now=now)
        elif kind == "catalogue":
            schema.set_catalogue(doc, args[0])
        elif kind == "message":
            schema.post_message(doc, args[0], "hi", now=now)
        else:
            inject_garbage(doc, args[0], args[1])
    except InvalidAction:
        pass


def inject_garbage(doc: Doc[Any], pid: str, where: str) -> None:
    """Write an entry of the wrong shape, as a buggy or hostile peer could."""
    roots = bind_roots(doc)
    with doc.transaction():
        if where == "selection":
            roots.selections[pid] = "not a map"
        elif where == "rating":
            roots.matrix[pid] = Map({"Trust": {"importance": 7, "practice": 0}})
        elif where == "vote":
            roots.votes["b1"] = Map({pid: "Z"}) if "b1" not in roots.votes else roots.votes["b1"]
            roots.votes["b1"][pid] = ["A", "A"]
        else:
            roots.participants[pid] = Map({"name": pid, "role": "boss", "joined_at": 1.0})


def sync(src: Doc[Any], dst: Doc[Any]) -> None:
    dst.apply_update(src.get_update(dst.get_state()))


@settings(max_examples=_BUDGET, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    replicas=st.integers(2, 3),
    plan=st.lists(
        st.one_of(
            st.tuples(st.just("act"), st.integers(0, 2), steps),
            st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
        ),
        max_size=40,
    ),
)
def test_incremental_equals_full_and_replicas_converge(
    replicas: int, plan: list[tuple[Any, ...]]
) -> None:
    docs: list[Doc[Any]] = [Doc() for _ in range(replicas)]
    schema.new_workshop(docs[0], title="W", facilitator_id="f", facilitator_name="F",
                        values=["Honesty", "Trust"], now=0.0)  # fmt: skip
    trackers = [DerivedTracker(doc) for doc in docs]
    try:
        for n, (kind, a, b) in enumerate(plan):
            if kind == "act":
                apply_step(docs[a % replicas], b, now=float(n))
            elif a % replicas != b % replicas:
                sync(docs[a % replicas], docs[b % replicas])
            for doc, tracker in zip(docs, trackers, strict=False):
                assert tracker.state == compute_state(doc)
        for src in docs:
            for dst in docs:
                if src is not dst:
                    sync(src, dst)
        first = compute_state(docs[0]).to_json()
        for doc, tracker in zip(docs, trackers, strict=False):
            assert compute_state(doc).to_json() == first
            assert tracker.state.to_json() == first
    finally:
        for tracker in trackers:
            tracker.close()
