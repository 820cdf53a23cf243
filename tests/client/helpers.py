"""The HTTP workshop flow and a fresh reader of the server's document, for client tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from vmv_sync.client import Backoff, WorkshopClient
from vmv_sync.schema import WorkshopData

SECRET = "client-tests-secret-0123456789abcdef"
FAST = Backoff(base=0.05, factor=2.0, cap=0.3)


async def create_workshop(base_url: str, values: list[str], title: str = "T") -> dict[str, Any]:
    """``POST /api/workshops``: the facilitator's answer (workshop_id, token, invite_code...)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        answer = await http.post("/api/workshops", json={"title": title, "name": "Fay", "values": values})
        answer.raise_for_status()
        return dict(answer.json())


async def join(base_url: str, created: dict[str, Any], name: str) -> dict[str, Any]:
    """``POST /api/workshops/{id}/join``: a participant's answer (participant_id, token...)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        answer = await http.post(
            f"/api/workshops/{created['workshop_id']}/join",
            json={"invite_code": created["invite_code"], "name": name},
        )
        answer.raise_for_status()
        return dict(answer.json())


async def server_document(
    url: str, workshop_id: str, store: Path, *, token: str | None = None, participant_id: str = "reader"
) -> WorkshopData:
    """What the server holds: a never-used replica connects, syncs and reads it."""
    kwargs: dict[str, Any] = {"token": token} if token else {"participant_id": participant_id}
    async with WorkshopClient(url, workshop_id, store_path=store, backoff=FAST, **kwargs) as reader:
        await reader.wait_connected(15)
        return reader.data
