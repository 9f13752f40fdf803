"""Validation of fairness settings and the per-group targets they imply."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from server.errors import InvalidArgument
from server.pipeline.types import FairnessParams, Policy


def _unit(name: str, v: float, *, low_open: bool = False, high_open: bool = False) -> None:
    ok = math.isfinite(v) and (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise InvalidArgument(f"{name} must be in {lo}0, 1{hi}, got {v}")


def _known(name: str, values: tuple[str, ...], known_groups: list[str] | None) -> None:
    if known_groups is None:  # no snapshot to check against (a config file at startup)
        return
    unknown = [g for g in values if g not in known_groups]
    if unknown:
        raise InvalidArgument(f"unknown {name} {unknown}; this snapshot has groups {known_groups}")


def validate(params: FairnessParams, known_groups: list[str] | None) -> None:
    """Raise `InvalidArgument` naming the first invalid or impossible setting; group names are
    checked against `known_groups` unless it is None."""
    if params.max_per_creator < 1:
        raise InvalidArgument(f"max_items_per_creator must be >= 1, got {params.max_per_creator}")
    if params.creator_window < 0:
        raise InvalidArgument(f"creator_window must be >= 0, got {params.creator_window}")
    _unit("min_protected_share", params.min_protected_share)
    _known("protected group(s)", params.protected_groups, known_groups)
    if len(params.policies) > 1 and Policy.NONE in params.policies:
        raise InvalidArgument("policies: NONE cannot be combined with other policies")
    _unit("fair_alpha", params.fair_alpha, low_open=True, high_open=True)
    _unit("repeat_decay", params.repeat_decay, low_open=True)
    _unit("repeat_decay_floor", params.repeat_decay_floor)
    _unit("diversity_lambda", params.diversity_lambda)
    for name, v in (
        ("exposure_step", params.exposure_step),
        ("max_exposure_price", params.max_exposure_price),
        ("creator_exposure_weight", params.creator_exposure_weight),
    ):
        if not (math.isfinite(v) and v >= 0):
            raise InvalidArgument(f"{name} must be finite and >= 0, got {v}")
    f = params.exposure_target_fraction
    if not (math.isfinite(f) and 0 < f <= 2):
        raise InvalidArgument(f"exposure_target_fraction must be in (0, 2], got {f}")
    if params.dpp_window < 0:
        raise InvalidArgument(f"dpp_window must be >= 0, got {params.dpp_window}")
    if params.exposure_window < 1:
        raise InvalidArgument(f"exposure_window must be >= 1, got {params.exposure_window}")
    if params.cold_start_position < 1:
        raise InvalidArgument(f"cold_start_position must be >= 1, got {params.cold_start_position}")
    _unit("cold_start_min_relevance", params.cold_start_min_relevance)
    _known("cold-start group(s)", params.cold_start_groups, known_groups)
    names = [g for g, _ in params.group_targets]
    _known("target group(s)", tuple(names), known_groups)
    if len(set(names)) != len(names):
        raise InvalidArgument(f"group_targets name a group more than once: {names}")
    for g, s in params.group_targets:
        _unit(f"group_targets[{g!r}]", s)
    total = sum(s for _, s in params.group_targets)
    if total > 1.0 + 1e-6:
        raise InvalidArgument(f"group_targets shares sum to {total:.4f}, above 1")


def targets(
    params: FairnessParams, group_names: list[str], catalogue_share: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Target exposure share per group code.

    Default: the catalogue share. Groups named in `group_targets` get their share; the others
    split what is left in proportion to their catalogue shares, so the targets sum to <= 1.
    """
    base = np.zeros(len(group_names))
    base[: catalogue_share.size] = catalogue_share[: len(group_names)]
    if not params.group_targets:
        return base
    given = dict(params.group_targets)
    out = base.copy()
    listed = np.array([g in given for g in group_names])
    rest = float(base[~listed].sum())
    left = max(0.0, 1.0 - sum(given.values()))
    scale = min(1.0, left / rest) if rest > 0 else 0.0
    out[~listed] = base[~listed] * scale
    for j, g in enumerate(group_names):
        if g in given:
            out[j] = given[g]
    return out


def protected_share(
    params: FairnessParams, group_names: list[str], target: NDArray[np.float64]
) -> float:
    """FA*IR's p: `min_protected_share`, else the protected groups' summed target share."""
    if params.min_protected_share > 0:
        return params.min_protected_share
    codes = [group_names.index(g) for g in params.protected_groups if g in group_names]
    if not codes:
        return 0.0
    if len(codes) < 8:  # numpy sums fewer than 8 terms in order: the same float, without numpy
        total = 0.0
        for c in codes:
            total += float(target[c])
        return float(min(1.0, total))
    return float(min(1.0, target[codes].sum()))
