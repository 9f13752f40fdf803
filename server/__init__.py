"""reelrank server: offline index build, snapshot serving and the gRPC services."""
