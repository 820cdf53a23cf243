"""Removing a participant from outside the page: ``vmv-sync participant remove``.

The server is the one that can close a removed participant's connections and whose
cache of revoked participants must learn of it, so the command asks the running
server (``POST /api/workshops/{id}/participants/{pid}/revoke``) with a short-lived
facilitator token it signs with the server's secret. With no server answering at
the given address it records the removal in the database (``AccessRegistry``) for
the next start. Also the two questions the CLI asks about a workshop: who is its
facilitator (is it a workshop with invites at all) and does a server answer.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

import anyio
import anyio.to_thread

from ..errors import VmvSyncError
from .auth import AccessRegistry
from .tokens import TokenIssuer

__all__ = ("Removal", "server_answers", "facilitator_of", "remove_participant")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removal:
    """What a removal did: through the server (``closed`` connections) or in the database only."""

    through_server: bool
    closed: int
    invite_code: str | None


def server_answers(base: str) -> bool:
    """Whether a vmv-sync server answers ``GET {base}/healthz`` within a second."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:  # noqa: S310 (our own http URL)
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


async def facilitator_of(registry: AccessRegistry, workshop_id: str) -> str | None:
    """The facilitator of a workshop made with invites (HTTP API or CLI), else None."""
    access = await registry.get(workshop_id)
    return None if access is None else access.facilitator_id


def _revoke_through(base: str, token: str, workshop_id: str, participant_id: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{base}/api/workshops/{workshop_id}/participants/{participant_id}/revoke", data=b"{}", method="POST",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own http URL)
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise VmvSyncError(f"the server refused: {exc.code} {exc.read().decode(errors='replace')}") from exc
    return answer if isinstance(answer, dict) else {}


async def remove_participant(
    registry: AccessRegistry, tokens: TokenIssuer, workshop_id: str, participant_id: str, base: str
) -> Removal:
    """Remove ``participant_id``: through the server at ``base`` if it answers, else in the registry.

    Raises :class:`VmvSyncError` with a one-line reason when the workshop is unknown,
    the participant is its facilitator, or the server refuses.
    """
    facilitator = await facilitator_of(registry, workshop_id)
    if facilitator is None:
        raise VmvSyncError(f"no workshop {workshop_id!r} with invites in this database")
    if participant_id == facilitator:
        raise VmvSyncError("the facilitator cannot be removed from their own workshop")
    if await anyio.to_thread.run_sync(server_answers, base):
        token = tokens.issue(workshop_id, facilitator, "CLI", "facilitator", ttl=60)
        answer = await anyio.to_thread.run_sync(_revoke_through, base, token, workshop_id, participant_id)
        logger.info("workshop=%s participant=%s removed through %s", workshop_id, participant_id, base)
        closed, code = answer.get("closed", 0), answer.get("invite_code")
        return Removal(True, closed if isinstance(closed, int) else 0, code if isinstance(code, str) else None)
    await registry.revoke(workshop_id, participant_id)
    code = await registry.rotate(workshop_id)
    logger.info("workshop=%s participant=%s removed in the database (no server at %s)", workshop_id, participant_id, base)
    return Removal(False, 0, code)
