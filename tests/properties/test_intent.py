"""Property: no acknowledged edit is lost, through the real server room, with an adversary.

A hypothesis ``RuleBasedStateMachine`` over :mod:`tests.properties.star`: 2-5 honest
replicas (devices; several may belong to one participant, one participant joins
late) around the real :class:`~vmv_sync.server.rooms.Room` (authentication on), and
an adversarial participant that sends crafted updates. Every replica starts empty
and unsynced, so its first edits are made before its first sync while the server
has already created its containers at join.

Invariants (``heal_and_check`` and the teardown; see docs/testing.md):

1. every honest replica ends connected, fully synced (state vector and every root
   equal to the server's), with no held intent and every edit it holds acknowledged
   (never locked out);
2. every acknowledged edit is in the server's document unless a later acknowledged
   edit of the same key (causally after it) undid it: a selection stays unless the
   participant later deselected it, a rating, vote or stage is its owner's latest,
   a message is there exactly once;
3. a refused adversary update leaves the server's document unchanged (checked per
   frame); the honest invariants hold whatever the adversary got accepted;
4. the server's document equals what its store reloads (every server restart and
   the end of every run).

Profiles: ``ci`` (default) and ``deep`` (tests/conftest.py); ``VMV_INTENT_EXAMPLES``
overrides the number of runs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from pycrdt import Doc, Map

import vmv_sync.schema as schema
from vmv_sync.schema import ROOTS, Roots, bind_roots, normalize_value_name

from .star import ADVERSARY, ATTACKS, Edit, HonestReplica, Intent, StarHarness, StarNetwork, content_of, selected

logger = logging.getLogger(__name__)

MAX_REPLICAS = 5
DEVICE_PIDS = ("f", "p1", "p2", "n1")
VALUES = ("Honesty", " honesty", "HONESTY", "Trust", "trust ", "Growth", "Courage")
RATED = ("Honesty", "Trust", "Growth", "Courage")
OPTIONS = ("A", "B", "C")
STORE = os.environ.get("VMV_INTENT_STORE", "memory")
PROFILE = settings.get_current_profile_name()
RESULTS_ENV = "VMV_CONVERGENCE_RESULTS"

STATS: Counter[str] = Counter()

replica_ix = st.integers(0, MAX_REPLICAS - 1)
small = st.integers(0, 1_000)
texts = st.text("ab é🙂\n", max_size=5)


def _containers(root: str, key: str) -> tuple[str, str, type]:
    return (root, key, Map)


class IntentMachine(RuleBasedStateMachine):
    """Honest devices, a late joiner and an adversary around the real room."""

    def __init__(self) -> None:
        super().__init__()
        self.harness: StarHarness | None = None
        self.net: StarNetwork | None = None
        self.clock = 1_000.0
        self.ballots: list[str] = []
        self.messages = 0
        self.steps = 0
        STATS["examples"] += 1

    # -- helpers -----------------------------------------------------------------------
    def _net(self) -> StarNetwork:
        assert self.net is not None
        return self.net

    def _r(self, ix: int) -> HonestReplica:
        net = self._net()
        return net.replicas[ix % len(net.replicas)]

    def _now(self) -> float:
        self.clock += 1.0
        return self.clock

    def _act(self, ix: int, intent: Intent) -> None:
        r = self._r(ix)
        if not r.joined:
            return  # no token yet: the device cannot exist before its participant joins
        STATS["actions"] += 1
        self.steps += 1
        r.act(intent)

    def _event(self, name: str) -> None:
        STATS["network_events"] += 1
        STATS[f"event_{name}"] += 1
        self.steps += 1

    # -- setup -------------------------------------------------------------------------
    @initialize(pids=st.lists(st.sampled_from(DEVICE_PIDS), min_size=2, max_size=MAX_REPLICAS),
                seed=st.integers(0, 2**16))  # fmt: skip
    def setup(self, pids: list[str], seed: int) -> None:
        self.harness = StarHarness(seed, STORE)
        self.net = self.harness.__enter__()
        net = self.net
        net.server.edit(lambda doc: schema.new_workshop(
            doc, title="Team", facilitator_id="f", facilitator_name="F",
            values=["Honesty", "Trust", "Growth"], now=1.0))  # fmt: skip
        for pid in ("p1", "p2", ADVERSARY):
            net.server.edit(lambda doc, pid=pid: schema.add_participant(doc, pid, pid.upper(), "participant", now=2.0))
        for i, pid in enumerate(pids):
            r = HonestReplica(net, i, pid, "facilitator" if pid == "f" else "participant")
            r.joined = pid != "n1"
            net.replicas.append(r)
        STATS[f"replicas_{len(pids)}"] += 1
        if len(set(pids)) < len(pids):
            STATS["runs_with_two_devices_of_one_participant"] += 1

    # -- server-side -------------------------------------------------------------------
    @rule()
    def join_late(self) -> None:
        """n1 joins over HTTP: the server writes its entry and creates its containers."""
        net = self._net()
        late = [r for r in net.replicas if r.pid == "n1" and not r.joined]
        if not late:
            return
        net.server.edit(lambda doc: schema.add_participant(doc, "n1", "N1", "participant", now=self._now()))
        for r in late:
            r.joined = True
        self._event("join")

    # -- honest actions ----------------------------------------------------------------
    @rule(ix=replica_ix, text=texts)
    def post_message(self, ix: int, text: str) -> None:
        r = self._r(ix)
        mid = f"m{self.messages}"
        self.messages += 1
        now = self._now()
        pid = r.pid
        self._act(ix, Intent("post_message", lambda roots: schema.post_message(roots, pid, text, message_id=mid, now=now),
                             ("message", pid, mid), text, message_id=mid))  # fmt: skip

    @rule(ix=replica_ix, value=st.sampled_from(VALUES))
    def toggle_value(self, ix: int, value: str) -> None:
        r = self._r(ix)
        pid, key, now = r.pid, normalize_value_name(value), self._now()
        # Resolved as the user saw it: an absent container shows nothing selected.
        if selected(r.roots, pid, key):
            intent = Intent("deselect", lambda roots: schema.deselect_value(roots, pid, value),
                            ("selection", pid, key), False, _containers("selections", pid))  # fmt: skip
        else:
            intent = Intent("select", lambda roots: schema.select_value(roots, pid, value, now=now),
                            ("selection", pid, key), True, _containers("selections", pid))  # fmt: skip
        self._act(ix, intent)

    @rule(ix=replica_ix, value=st.sampled_from(RATED), importance=st.integers(1, 5), practice=st.integers(1, 5))
    def rate_value(self, ix: int, value: str, importance: int, practice: int) -> None:
        pid = self._r(ix).pid
        self._act(ix, Intent("rate", lambda roots: schema.rate_value(roots, pid, value, importance, practice),
                             ("rating", pid, value), (importance, practice), _containers("matrix", pid)))  # fmt: skip

    @rule(ix=replica_ix, stage=st.sampled_from(schema.STAGES))
    def set_progress(self, ix: int, stage: str) -> None:
        pid, now = self._r(ix).pid, self._now()
        self._act(ix, Intent("progress", lambda roots: schema.set_progress(roots, pid, stage, now=now),
                             ("progress", pid, ""), stage))  # fmt: skip

    @rule(ix=replica_ix, b=small, single=st.sampled_from(OPTIONS),
          multi=st.lists(st.sampled_from(OPTIONS), min_size=1, max_size=2, unique=True), retract=st.booleans())  # fmt: skip
    def vote(self, ix: int, b: int, single: str, multi: list[str], retract: bool) -> None:
        r = self._r(ix)
        visible = sorted(r.roots.ballots.keys())
        if not visible:
            return  # nothing to vote on in this device's view
        bid = visible[b % len(visible)]
        pid = r.pid
        ballot = r.roots.ballots.get(bid)
        if retract:
            self._act(ix, Intent("retract", lambda roots: schema.retract_vote(roots, bid, pid),
                                 ("vote", pid, bid), None, _containers("votes", bid)))  # fmt: skip
            return
        choice: str | list[str] = list(multi) if isinstance(ballot, Map) and ballot.get("kind") == "multi" else single
        self._act(ix, Intent("vote", lambda roots: schema.cast_vote(roots, bid, pid, choice),
                             ("vote", pid, bid), choice, _containers("votes", bid)))  # fmt: skip

    @rule(ix=replica_ix, at=small, insert=texts)
    def edit_mission(self, ix: int, at: int, insert: str) -> None:
        r = self._r(ix)
        length = len(str(r.roots.mission))
        pos = at % (length + 1)
        self._act(ix, Intent("mission", lambda roots: schema.edit_mission(roots, pos, insert=insert),
                             ("other", r.pid, "mission"), None, remakeable=False))  # fmt: skip

    @rule(ix=replica_ix, multi=st.booleans())
    def open_ballot(self, ix: int, multi: bool) -> None:
        """The facilitator's device writes the ballot only; the server adds its votes Map."""
        r = self._r(ix)
        if r.pid != "f":
            return
        bid = f"b{len(self.ballots)}"
        self.ballots.append(bid)

        def write(roots: Roots) -> None:
            roots.ballots[bid] = Map({"question": "Which?", "options": list(OPTIONS), "stage": "values-collective",
                                      "kind": "multi" if multi else "single", "max_choices": 2 if multi else 1,
                                      "open": True})  # fmt: skip

        self._act(ix, Intent("open_ballot", write, ("other", "f", bid), None))

    @rule(ix=replica_ix, b=small)
    def close_ballot(self, ix: int, b: int) -> None:
        r = self._r(ix)
        visible = sorted(r.roots.ballots.keys())
        if r.pid == "f" and visible:
            bid = visible[b % len(visible)]
            self._act(ix, Intent("close_ballot", lambda roots: schema.close_ballot(roots, bid), ("other", "f", bid), None))

    # -- network and devices -----------------------------------------------------------
    @rule(picks=st.lists(st.tuples(replica_ix, st.booleans(), st.integers(1, 4)), min_size=1, max_size=6))
    def deliver(self, picks: list[tuple[int, bool, int]]) -> None:
        net = self._net()
        for ix, up, count in picks:
            r = self._r(ix)
            done = net.deliver_up(r, count) if up else net.deliver_down(r, count)
            STATS["frames_delivered"] += done
            if done:
                self._event("deliver")

    @rule(ix=replica_ix, online=st.booleans())
    def set_online(self, ix: int, online: bool) -> None:
        net, r = self._net(), self._r(ix)
        net.go_online(r) if online else net.go_offline(r)
        self._event("online" if online else "offline")

    @rule(ix=replica_ix)
    def drop_connection(self, ix: int) -> None:
        """The connection breaks (in-flight frames lost both ways); the device reconnects."""
        net, r = self._net(), self._r(ix)
        if r.conn is not None:
            net.disconnect(r)
            net.go_online(r)
            self._event("drop")

    @rule(ix=replica_ix)
    def flush(self, ix: int) -> None:
        self._r(ix).flush()
        self._event("flush")

    @rule(ix=replica_ix, graceful=st.booleans())
    def restart_device(self, ix: int, graceful: bool) -> None:
        """A page reload: from the local store, under a new client id (a crash loses the unflushed)."""
        self._net().crash(self._r(ix), graceful)
        self._event("restart" if graceful else "crash")

    @rule()
    def restart_server(self) -> None:
        self._net().restart_server()
        self._event("server_restart")

    @rule(kind=st.sampled_from(ATTACKS), pick=small, size=small)
    def attack(self, kind: str, pick: int, size: int) -> None:
        outcome = self._net().attack(kind, pick, size)
        STATS["adversary_frames"] += outcome != "skipped"
        STATS[f"adversary_{outcome}"] += 1
        self._event("attack")

    @rule()
    def heal_and_check(self) -> None:
        self._event("heal_and_check")
        self.check()

    # -- invariants ----------------------------------------------------------------------
    def check(self) -> None:
        net = self._net()
        net.heal()
        STATS["heal_checks"] += 1
        server_sv, update = net.server.state()
        server: Doc[Any] = Doc()
        server.apply_update(update)
        expected = content_of(server)
        roots = bind_roots(server)

        # 1. never locked out: every honest device is synced, holds nothing back, and
        #    every edit it holds is acknowledged.
        for r in net.replicas:
            if not r.joined:
                continue
            assert r.conn is not None and r.synced and not r.up, (r.index, r.pid)
            assert not r.held, (r.index, [i.name for i in r.held])
            assert r.state_vector() == server_sv, (r.index, r.state_vector(), server_sv)
            assert content_of(r.doc) == expected, r.index
            unacked = [e for e in r.own.values() if not e.acked]
            assert not unacked, (r.index, unacked)
            STATS["replicas_synced"] += 1

        # 2. every acknowledged edit is there unless a later acknowledged edit undid it.
        by_key: dict[tuple[str, str, str], list[Edit]] = {}
        for edit in net.edits:
            by_key.setdefault(edit.key, []).append(edit)
        messages = Counter(str(m.get("id")) for m in roots.messages if isinstance(m, Map))
        assert all(n == 1 for n in messages.values()), messages
        assert "forged" not in messages
        for key, edits in by_key.items():
            kind, pid, name = key
            acked = [e for e in edits if e.acked]
            if not acked or kind == "other":
                continue
            STATS["acked_edits_checked"] += len(acked)
            if kind == "message":
                assert name in messages, (key, acked)
                continue
            allowed = [e.value for e in edits if not any(e.happened_before(a) for a in acked)]
            actual = self._actual(roots, kind, pid, name)
            assert actual in allowed, (key, actual, allowed, acked)
            STATS["keys_checked"] += 1
            STATS["keys_exact" if len(set(map(repr, allowed))) == 1 else "keys_concurrent"] += 1

    @staticmethod
    def _actual(roots: Roots, kind: str, pid: str, key: str) -> Any:
        if kind == "selection":
            return selected(roots, pid, key)
        if kind == "rating":
            inner = roots.matrix.get(pid)
            rating = inner.get(key) if isinstance(inner, Map) else None
            return (rating["importance"], rating["practice"]) if isinstance(rating, dict) else None
        if kind == "vote":
            inner = roots.votes.get(key)
            return inner.get(pid) if isinstance(inner, Map) else None
        progress = roots.progress.get(pid)
        return progress.get("stage") if isinstance(progress, Map) else None

    def teardown(self) -> None:
        try:
            if self.net is not None:
                STATS["steps"] += self.steps
                self.check()
                self.net.restart_server()  # 4. the store reloads the same document
                STATS["final_checks"] += 1
        finally:
            if self.net is not None:
                for name, value in self.net.counts.items():
                    STATS[f"net_{name}"] += value
            if self.harness is not None:
                self.harness.__exit__(None, None, None)


_ = ROOTS


def _operations() -> int:
    return STATS["actions"] + STATS["network_events"] - STATS["event_deliver"] + STATS["frames_delivered"]


@pytest.fixture(scope="module", autouse=True)
def intent_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    STATS.clear()
    started = time.monotonic()
    yield
    summary = {
        "profile": PROFILE,
        "max_examples": MACHINE_EXAMPLES,
        "stateful_step_count": settings().stateful_step_count,
        "store": STORE,
        "seconds": round(time.monotonic() - started, 1),
        "operations": _operations(),
        **dict(sorted(STATS.items())),
    }
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line("intent summary: " + json.dumps(summary))
    logger.info("intent summary: %s", summary)
    target = os.environ.get(RESULTS_ENV)
    if target:
        path = Path(target)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing[f"intent-{PROFILE}"] = summary
        path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


_DEFAULT = 150 if PROFILE == "ci" else settings().max_examples
MACHINE_EXAMPLES = int(os.environ.get("VMV_INTENT_EXAMPLES", _DEFAULT))

TestIntent = IntentMachine.TestCase
TestIntent.settings = settings(settings(), max_examples=MACHINE_EXAMPLES, deadline=None,
                               stateful_step_count=int(os.environ.get("VMV_INTENT_STEPS", settings().stateful_step_count)))
TestIntent = pytest.mark.timeout(0 if PROFILE == "deep" else 900)(TestIntent)


def _workshop(net: StarNetwork) -> None:
    net.server.edit(lambda doc: schema.new_workshop(doc, title="Team", facilitator_id="f", facilitator_name="F", now=1.0))
    for pid in ("p1", ADVERSARY):
        net.server.edit(lambda doc, pid=pid: schema.add_participant(doc, pid, pid.upper(), "participant", now=2.0))


def test_an_id_announced_in_awareness_cannot_be_claimed_by_someone_else() -> None:
    """Found by IntentMachine (attack ``squat_unpublished``); see docs/testing.md.

    p1's device announces its client id C in awareness (as every y-websocket provider
    does on connect), goes offline and writes a message under C (clocks 0..6) that the
    server has not seen. x, who learned C from that awareness, sends a deleted struct
    at (C, 0) of length 1000. Before awareness claims, C had no owner and the room
    accepted it: p1's sync step 2 (the diff from the server's C: 1000) then carried
    nothing, with no refusal and no "saved", and the message never arrived. Now the
    server claims C for p1 when it is announced, and refuses x with 4403.
    """
    with StarHarness(seed=1) as net:
        _workshop(net)
        victim = HonestReplica(net, 0, "p1", "participant")
        victim.joined = True
        victim.detect_foreign = False  # a stock Yjs client: it could not tell
        net.replicas.append(victim)
        net.go_online(victim)
        net.deliver_up(victim, 2)  # sync step 1 and the awareness state
        net.go_offline(victim)
        victim.act(Intent("post_message", lambda roots: schema.post_message(roots, "p1", "hi", message_id="m0", now=3.0),
                          ("message", "p1", "m0"), "hi", message_id="m0"))  # fmt: skip
        assert net.attack("squat_unpublished", 0, 2) == "refused_4403"  # deleted_struct(C, 0, 1000)
        net.heal()
        _, update = net.server.state()
        server: Doc[Any] = Doc()
        server.apply_update(update)
        assert [m.get("id") for m in bind_roots(server).messages] == ["m0"]


def test_the_fixed_client_recovers_from_a_claimed_unseen_client_id() -> None:
    """The same attack against the model's fixed client, by an attacker who learned an id
    the server never saw announced (no real page can: it is 53 random bits sent nowhere):
    the client sees the server holding clocks under its current id that it never wrote,
    takes a fresh id and re-makes the edit."""
    with StarHarness(seed=1) as net:
        _workshop(net)
        victim = HonestReplica(net, 0, "p1", "participant")
        victim.joined = True
        net.replicas.append(victim)
        net.announced.add(victim.client_id)  # leaked outside the protocol
        victim.act(Intent("post_message", lambda roots: schema.post_message(roots, "p1", "hi", message_id="m0", now=3.0),
                          ("message", "p1", "m0"), "hi", message_id="m0"))  # fmt: skip
        assert net.attack("squat_unpublished", 0, 2) == "accepted"
        net.heal()
        _, update = net.server.state()
        server: Doc[Any] = Doc()
        server.apply_update(update)
        assert [m.get("id") for m in bind_roots(server).messages] == ["m0"]
        assert victim.recoveries == 1 and any(e.acked for e in net.edits if e.key[2] == "m0")
        assert content_of(victim.doc) == content_of(server)
