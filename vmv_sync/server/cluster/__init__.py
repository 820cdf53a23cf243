"""Several server processes on one store: leases, fencing, relaying (docs/scaling.md).

Only used when ``redis_url`` is set; the single process imports none of it.
"""

from __future__ import annotations

from .errors import Moved
from .node import Cluster, default_node_id
from .relay import RelayRoom

__all__ = ("Cluster", "Moved", "RelayRoom", "default_node_id")
