"""The activation quality gate: floors on measured ANN recall and offline NDCG."""

from __future__ import annotations

from typing import Any

from server.config import ServerConfig


def ndcg_at_10(manifest: dict[str, Any]) -> float | None:
    """Offline NDCG@10 recorded by the build, if it measured one."""
    quality = manifest.get("quality")
    value = quality.get("ndcg_at_10") if isinstance(quality, dict) else None
    return float(value) if value is not None else None


def failures(manifest: dict[str, Any], config: ServerConfig) -> list[str]:
    """Why `manifest`'s snapshot must not be activated unforced; empty when it passes."""
    out: list[str] = []
    if config.min_ann_recall is not None:
        recall = manifest.get("ann", {}).get("recall_at_100")
        if recall is None:
            out.append("manifest has no ann.recall_at_100")
        elif float(recall) < config.min_ann_recall:
            out.append(f"ANN recall@100 {float(recall):.4f} < floor {config.min_ann_recall:g}")
    if config.min_ndcg_at_10 is not None:
        ndcg = ndcg_at_10(manifest)
        if ndcg is not None and ndcg < config.min_ndcg_at_10:
            out.append(f"offline NDCG@10 {ndcg:.4f} < floor {config.min_ndcg_at_10:g}")
    return out
