"""Offline index build and versioned snapshots (written atomically, memory-mapped when served)."""
