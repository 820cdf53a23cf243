"""The sync server: app, rooms, connections."""

from __future__ import annotations

from .app import create_app
from .connection import Connection, Principal
from .rooms import Room, RoomManager, RoomSettings
from .serve import run, serve

__all__ = ("create_app", "Connection", "Principal", "Room", "RoomManager", "RoomSettings", "run", "serve")
