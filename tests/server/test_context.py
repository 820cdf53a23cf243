"""The typed server context (server/context.py): made by the lifespan, gone after it."""

from __future__ import annotations

import pytest

from vmv_sync.config import Settings
from vmv_sync.errors import ServerError
from vmv_sync.server.app import create_app
from vmv_sync.server.context import ServerContext, server_context
from vmv_sync.storage import MemoryStore

pytestmark = pytest.mark.anyio


async def test_the_lifespan_publishes_one_context_and_takes_it_back(tmp_path) -> None:
    settings = Settings(auth=False, db=str(tmp_path / "db.sqlite3"))  # the secret's mirror goes beside it
    store = MemoryStore()
    app = create_app(settings, store=store)
    with pytest.raises(ServerError, match="not running"):
        server_context(app)
    async with store, app.router.lifespan_context(app):
        context = server_context(app)
        assert isinstance(context, ServerContext)
        assert context.settings is settings and context.store is store
        assert context.manager.rooms == {} and app.state.started.is_set()
        async with context.room("w1") as room:  # held for the block, released after it
            assert context.manager.rooms["w1"] is room and room.refs == 1
        assert room.refs == 0

        class Request:  # what endpoints pass: anything with ``.app``
            pass

        request = Request()
        request.app = app  # type: ignore[attr-defined]
        assert server_context(request) is context
    with pytest.raises(ServerError):
        server_context(app)
