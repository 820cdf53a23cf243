"""The ``vmv-sync`` command line: one entry point, subcommands, help that reads well.

``main`` (cli/main.py) is the click group; importing the command modules registers
their commands on it: the facilitator's (cli/workshops.py) and the operator's
(cli/admin.py).
"""

from __future__ import annotations

from . import admin, workshops  # noqa: F401  (they register their commands on main)
from .main import main

__all__ = ("main",)
