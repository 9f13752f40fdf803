"""reelrank client: typed gRPC clients, the `reelrank` CLI and the load tester.

The public entry points are re-exported here; the load tester lives in
:mod:`client.loadtest` and the in-process fake server in :mod:`client.fake_server`.
"""

from client.errors import ReelrankError
from client.histogram import LogHistogram
from client.rank_client import AdminClient, Event, RankingClient

__all__ = ["AdminClient", "Event", "LogHistogram", "RankingClient", "ReelrankError"]
