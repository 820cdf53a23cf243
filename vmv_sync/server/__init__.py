"""The sync server: app, rooms, connections."""

from __future__ import annotations

from .app import create_app
from .auth import Principal
from .connection import Connection
from .manager import RoomManager
from .origins import FromClient, FromServer, Origin
from .rooms import Room
from .serve import run, serve

__all__ = ("create_app", "Connection", "Principal", "Room", "RoomManager", "FromClient", "FromServer", "Origin", "run", "serve")
