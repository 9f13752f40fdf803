"""reelrank client: typed gRPC clients, the `reelrank` CLI and the load tester."""
