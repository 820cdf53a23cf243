"""The page's chat order (web/client/src/chat.js) equals the Python rule (vmv_sync.derived.chat).

One document with the cases where two implementations could drift: messages with and
without ``hlc``, an ``hlc`` written as a Python int (a BigInt in JavaScript) and as a
float, equal clocks broken by authors and ids beyond the BMP and in the private-use
area (UTF-16 and code-point order differ there), a repeated id, malformed entries, and
a few hundred random messages. Node reads the document's bytes with the package's
``readMessages`` and ``orderedMessages``; the ids must come out in Python's order. A
second check: the package's ``postMessage`` writes an ``hlc`` past every clock it holds.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map

from tests.webclient.test_client_package import WEB, _node
from vmv_sync.derived.chat import ordered_messages
from vmv_sync.schema import read_workshop

SCRIPT = """
import { readFileSync } from 'node:fs'
import { Y, readMessages, orderedMessages, actions } from '@vmv-sync/client'
const doc = new Y.Doc()
Y.applyUpdate(doc, readFileSync(process.argv[1]))
const order = orderedMessages(readMessages(doc.getArray('messages'))).map((m) => m.id)
const id = actions.postMessage(doc, 'zed', 'new', 'vision', 'js-new')
const last = orderedMessages(readMessages(doc.getArray('messages'))).at(-1)
const hlc = doc.getArray('messages').toArray().at(-1).get('hlc')
console.log(JSON.stringify({ order, last: last.id, id, hlcType: typeof hlc }))
"""


def _document() -> Doc[Any]:
    doc: Doc[Any] = Doc()
    messages = doc.get("messages", type=Array)
    rng = random.Random(21)
    authors = ["ann", "bob", "\U0001f600x", "\ue000y", "Zoë", "zoe\u0301"]
    fixed: list[dict[str, Any]] = [
        {"id": "legacy", "author": "ann", "text": "t", "sent_at": 1000.0005, "stage": "vision"},
        {"id": "int-hlc", "author": "ann", "text": "t", "sent_at": 5.0, "stage": "vision", "hlc": 1000},
        {"id": "float-hlc", "author": "bob", "text": "t", "sent_at": 5.0, "stage": "vision", "hlc": 1000.0},
        {"id": "astral", "author": "\U0001f600x", "text": "t", "sent_at": 1.0, "stage": "vision", "hlc": 1000.0},
        {"id": "private", "author": "\ue000y", "text": "t", "sent_at": 1.0, "stage": "vision", "hlc": 1000.0},
        {"id": "bad-hlc", "author": "bob", "text": "t", "sent_at": 0.5, "stage": "vision", "hlc": 1.5},
        {"id": "neg-hlc", "author": "bob", "text": "t", "sent_at": 0.25, "stage": "vision", "hlc": -4.0},
        {"id": "int-sent", "author": "bob", "text": "t", "sent_at": 2, "stage": "vision"},
        {"id": "legacy", "author": "bob", "text": "repeat", "sent_at": 0.0, "stage": "vision"},
        {"id": "no-stage", "author": "bob", "text": "t", "sent_at": 0.0, "stage": "nowhere"},
        {"id": "", "author": "bob", "text": "t", "sent_at": 0.0, "stage": "vision"},
        {"id": "bool-sent", "author": "bob", "text": "t", "sent_at": True, "stage": "vision"},
    ]
    for i in range(300):
        entry: dict[str, Any] = {
            "id": f"r{rng.randrange(10**6):06d}-{i}",
            "author": rng.choice(authors),
            "text": "x",
            "sent_at": 1_717_000_000 + rng.random() * 5,
            "stage": "vision",
        }
        if rng.random() < 0.7:
            entry["hlc"] = float(1_717_000_000_000 + rng.randrange(5000))
        fixed.append(entry)
    with doc.transaction():
        for entry in fixed:
            messages.append(Map(entry))
        messages.append("not a map")
    return doc


def test_the_page_orders_the_chat_exactly_as_python_does(tmp_path: Path) -> None:
    node = _node()
    doc = _document()
    path = tmp_path / "doc.bin"
    path.write_bytes(doc.get_update())
    proc = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, str(path)],
        cwd=WEB, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    expected = [m.id for m in ordered_messages(read_workshop(doc).messages)]
    assert "bad-hlc" in expected and "neg-hlc" in expected  # an invalid hlc falls back to sent_at
    assert result["order"] == expected
    assert result["last"] == result["id"] == "js-new"  # written after every clock it held
    assert result["hlcType"] == "number"
