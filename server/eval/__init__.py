"""Offline evaluation: splits, ranking metrics, baselines, and runs through the served `Rank`."""
