"""Benchmark of the fairness re-ranker: quality targets over 1,000 users, and latency.

Run: ``.venv/bin/python bench/bench_fairness.py`` (``make bench-fairness``). Writes
``bench/results/fairness.json`` and the "## Fairness (make bench-fairness)" section of
BENCHMARKS.md.

Quality: the synthetic catalogue (``server.data.synthetic``; a ``new_creator`` group holds ~20%
of the items), interactions split by time (the last 10% held out), a snapshot built from the
rest. For 1,000 users (seeded sample of those with held-out views) the pipeline retrieves and
scores 500 candidates once; the page of 20 is then cut by the unconstrained order (policy NONE)
and by the server's default policy (one `ExposureTracker` across the users, in order, as a server
would). Reported: each group's position-discounted exposure share over all pages against its
target (catalogue share), DCG retained (gains = ranking scores), NDCG@10 against held-out views,
creator-exposure Gini, and hard-constraint checks of every page. For scale: the Lagrangian
page (`frontier`: the most DCG any re-ranker keeps at a given protected exposure, without a cap
and with each cap of `CAPS`), the Gini of relevance-blind random pages (`reference_gini`), and
the lowest Gini any re-ranker can reach at each level of DCG retained (`certified_gini`: a
certified lower bound and the best randomised re-ranker found).
`compositions`: the default policy at every creator cap of `CAPS` x aim of the exposure prices
(`AIMS`), from a cold tracker and from a warm one (after one unmeasured pass over the users).

Latency: `fairness.rerank` of 500 scored candidates down to 50 with every policy on (creator cap
over a window, repeat decay, FA*IR floor + group shares, MMR over 64-d embeddings, amortised
exposure, cold-start slot), report included; p50/p99 over 2,000 calls after warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.config import ServerConfig  # noqa: E402
from server.data import synthetic  # noqa: E402
from server.data.loaders import write_table  # noqa: E402
from server.eval.gini_bound import gini_bound  # noqa: E402
from server.eval.metrics import gini  # noqa: E402
from server.eval.runner import ablation  # noqa: E402
from server.index import builder  # noqa: E402
from server.index.loaded import LoadedSnapshot, open_snapshot  # noqa: E402
from server.pipeline import fairness, ranking, retrieval  # noqa: E402
from server.pipeline import rank as pipeline  # noqa: E402
from server.pipeline.fairness.report import cap_violated, floor_need, floors_met  # noqa: E402
from server.pipeline.types import FairnessParams, Policy  # noqa: E402
from server.pipeline.user_state import build_user_state  # noqa: E402

PAGE = 20
CANDIDATES = 500


def build_data(
    work: Path, n_items: int, n_users: int, seed: int
) -> tuple[Path, dict[str, set[str]]]:
    cat = synthetic.simulate(n_items, n_users, seed)
    it = cat.interactions
    ts = it.column("timestamp").to_numpy()
    cut = np.sort(ts)[int(ts.size * 0.9)]
    train = it.filter(pc.less(it.column("timestamp"), cut))
    test = it.filter(pc.and_(pc.greater_equal(it.column("timestamp"), cut),
                             pc.equal(it.column("event"), "view")))  # fmt: skip
    write_table(cat.items, work / "items.csv")
    write_table(train, work / "train.csv")
    manifest = builder.build_snapshot(work / "train.csv", work / "items.csv", work / "snapshots")
    held: dict[str, set[str]] = {}
    for u, i in zip(
        test.column("user_id").to_pylist(), test.column("item_id").to_pylist(), strict=True
    ):
        held.setdefault(u, set()).add(i)
    return Path(manifest["path"]), held


def ndcg_at(page_ids: list[str], relevant: set[str], k: int = 10) -> float:
    gains = np.array([1.0 if i in relevant else 0.0 for i in page_ids[:k]])
    disc = 1.0 / np.log2(np.arange(2, gains.size + 2))
    ideal = (1.0 / np.log2(np.arange(2, min(k, len(relevant)) + 2))).sum()
    return float((gains * disc).sum() / ideal) if ideal > 0 else 0.0


def variants(params: FairnessParams) -> dict[str, FairnessParams]:
    """NONE, the default, the default without each of its policies, and with the optional ones."""
    out = {"none": dataclasses.replace(params, policy=Policy.NONE, policies=())}
    out["default"] = params
    out.update(ablation(params, "default"))  # each policy off, each optional one on
    for price in (0.1, 0.15):
        out[f"default, max price {price}"] = dataclasses.replace(params, max_exposure_price=price)
    if params.exposure_target_fraction != 1.0:
        out["default, exposure aim 1.00"] = dataclasses.replace(
            params, exposure_target_fraction=1.0
        )
    for w in (0.0, 0.1):
        if w != params.creator_exposure_weight:
            out[f"default, creator weight {w}"] = dataclasses.replace(
                params, creator_exposure_weight=w
            )
    return out


# Creator caps that still stop one creator flooding a screen, and aims of the exposure prices.
CAPS = ((2, 5), (2, 4), (2, 3), (3, 6))
AIMS = (1.0, 0.97, 0.95, 0.93)


def compositions(params: FairnessParams) -> list[tuple[str, FairnessParams]]:
    """The default composition at every cap x aim; then the 2-in-3 cap without the soft
    creator terms (repeat decay, creator-level exposure), the cheapest capped composition."""
    out = [
        (f"{c} in {w}, aim {f:.2f}", dataclasses.replace(
            params, max_per_creator=c, creator_window=w, exposure_target_fraction=f))
        for c, w in CAPS
        for f in AIMS
    ]  # fmt: skip
    lean = tuple(x for x in params.active() if x is not Policy.CREATOR_DECAY)
    for f in (0.95, 0.93):
        out.append((
            f"2 in 3, aim {f:.2f}, no repeat decay, creator weight 0",
            dataclasses.replace(params, policies=lean, max_per_creator=2, creator_window=3,
                                exposure_target_fraction=f, creator_exposure_weight=0.0),
        ))  # fmt: skip
    return out


def frontier(
    snap: LoadedSnapshot,
    cases: list[tuple[str, NDArray[np.int32], NDArray[np.float32]]],
    target: NDArray[np.float64],
    protected: tuple[str, ...],
    params: FairnessParams,
    other_caps: tuple[tuple[int, int], ...] = (),
) -> dict[str, Any]:
    """The most DCG any re-ranker keeps while the protected groups reach a given exposure.

    Lagrangian relaxation of "maximise the mean DCG retained subject to the protected groups'
    exposure over all pages": with one price `mu` for every page, each page sorts by
    `gain / ideal DCG + mu * protected` (the rearrangement inequality makes that the page's
    optimum), and bisection on `mu` finds the smallest price whose exposure ratio reaches the
    level. Without the creator cap this is the exact optimum up to the duality gap, reported as
    `dcg_upper_bound` (`mean DCG + mu * (mean exposure - required)`): no policy can keep more.
    With the cap the same price goes through the constrained fill (cap only; a heuristic).
    `other_caps` (count, window) get the capped page at the 0.90 and 0.95 levels too, keyed
    `cap_{count}_in_{window}_ratio_{level}`.
    """
    disc = fairness.report.discount(PAGE)
    pages = []
    for _, items, total in cases:
        s = total.astype(np.float64)
        g = np.maximum(s, 0.0)
        order = np.lexsort((np.arange(s.size), -s))
        ideal = float((g[order[:PAGE]] * disc).sum())
        prot = fairness.report.in_groups(
            snap.item_group[items].astype(np.int64), protected, snap.groups
        ).astype(np.float64)
        rank = np.empty(s.size, np.int64)
        rank[order] = np.arange(s.size)
        pages.append((g, ideal, prot, rank, snap.item_creator[items].astype(np.int64)))
    share = float(target[[snap.groups.index(x) for x in protected]].sum())
    no_need = np.zeros((PAGE + 1, 0), np.int32)
    no_cls = np.zeros((0, len(snap.groups)), np.uint8)
    no_emb = np.zeros((max((p[0].size for p in pages), default=0), 0), np.float32)

    def run(mu: float, cap: tuple[int, int] | None) -> tuple[float, float, float, float]:
        dcg, expo = [], []
        for g, ideal, prot, rank, creators in pages:
            v = g / max(ideal, 1e-12) + mu * prot
            if cap:
                chosen, _ = fairness.select(
                    v, creators, np.zeros(v.size, np.int64), rank, no_emb[: v.size], PAGE,
                    cap=cap[0], window=cap[1] or PAGE,
                    mult=np.ones(PAGE + 1), lam=1.0, need=no_need, class_groups=no_cls,
                    cold_eligible=np.zeros(v.size, bool), cold_pos=-1, floor_over_cap=False,
                )  # fmt: skip
            else:
                chosen = np.lexsort((rank, -v))[:PAGE]
            d = disc[: chosen.size]
            dcg.append(float((g[chosen] * d).sum()) / ideal if ideal > 0 else 1.0)
            expo.append(float((prot[chosen] * d).sum()) / float(d.sum()))
        return float(np.mean(dcg)), float(np.min(dcg)), float(np.mean(expo)) / share, mu

    out: dict[str, Any] = {}
    own = (params.max_per_creator, params.creator_window)
    runs: list[tuple[str, tuple[int, int] | None, float]] = [
        (f"{name}_ratio_{level:.2f}", cap, level)
        for name, cap in (("no_cap", None), ("cap", own))
        for level in (0.9, 0.95, 1.0)
    ]
    runs += [
        (f"cap_{c}_in_{w}_ratio_{level:.2f}", (c, w), level)
        for c, w in other_caps
        if (c, w) != own
        for level in (0.9, 0.95)
    ]
    for key, cap, level in runs:
        lo, hi = 0.0, 2.0
        best = run(hi, cap)
        for _ in range(18):
            mid = (lo + hi) / 2
            r = run(mid, cap)
            if r[2] >= level:
                hi, best = mid, r
            else:
                lo = mid
        mean, worst, ratio, mu = best
        # Exposure above the level is worth mu each (per page, in exposure units).
        bound = mean + mu * (ratio - level) * share * float(disc.sum())
        out[key] = {
            "price": round(mu, 5),
            "exposure_ratio": round(ratio, 4),
            "mean_dcg_retained": round(mean, 4),
            "min_dcg_retained": round(worst, 4),
        }
        if not cap:
            out[key]["dcg_upper_bound"] = round(bound, 4)
    return out


def reference_gini(
    snap: LoadedSnapshot,
    cases: list[tuple[str, NDArray[np.int32], NDArray[np.float32]]],
    seed: int,
) -> dict[str, Any]:
    """Creator-exposure Gini of relevance-blind pages, as a scale for the Gini target.

    Pages of `PAGE` items drawn uniformly at random from the whole catalogue, and from each
    user's own candidates; same position discount, same users.
    """
    rng = np.random.default_rng(seed)
    disc = fairness.report.discount(PAGE)
    creators = snap.item_creator.astype(np.int64)
    out: dict[str, Any] = {}
    for name in ("random_catalogue_pages", "random_candidate_pages"):
        expo = np.zeros(len(snap.creator_ids))
        for _, items, _ in cases:
            if name == "random_catalogue_pages":
                page = rng.choice(creators.size, PAGE, replace=False)
            else:
                page = items[rng.choice(items.size, min(PAGE, items.size), replace=False)]
            np.add.at(expo, creators[page], disc[: page.size])
        out[name] = {
            "creator_gini_all_creators": round(gini(expo), 4),
            "creator_gini_exposed_creators": round(gini(expo[expo > 0]), 4),
            "creators_exposed": int((expo > 0).sum()),
        }
    return out


Case = tuple[str, NDArray[np.int32], NDArray[np.float32]]

# Levels of mean DCG retained for the certified Gini (the default policy's own level is added).
GINI_LEVELS = (0.97, 0.95, 0.90)


def _down(x: float, digits: int) -> float:
    """`x` rounded toward -inf (a rounded lower bound stays a lower bound)."""
    return math.floor(x * 10**digits) / 10**digits


def _up(x: float, digits: int) -> float:
    return math.ceil(x * 10**digits) / 10**digits


def certified_gini(
    snap: LoadedSnapshot, cases: list[Case], levels: list[tuple[str, float]], none_gini: float
) -> dict[str, Any]:
    """The lowest creator-exposure Gini (all creators) any re-ranker of the same candidates can
    reach while keeping the mean DCG retained at each level (`server.eval.gini_bound`).

    `bound`: certified, for every re-ranker of the candidates (pages of `PAGE` distinct items,
    deterministic or randomised, any creator cap or none). `achievable`: the Gini of the best
    randomised re-ranker found (of its expected exposure); the optimum lies between the two.
    Rounded toward the safe side: the bound down, the achievable value up.
    """
    disc = fairness.report.discount(PAGE)
    gains = [np.maximum(total.astype(np.float64), 0.0) for _, _, total in cases]
    creators = [snap.item_creator[items].astype(np.int64) for _, items, _ in cases]
    n = len(snap.creator_ids)
    # The inputs reproduce NONE's pages, and the two Gini implementations agree on them.
    expo = np.zeros(n)
    for (_, _, total), c in zip(cases, creators, strict=True):
        top = np.lexsort((np.arange(total.size), -total))[:PAGE]
        np.add.at(expo, c[top], disc[: top.size])
    assert abs(gini(expo) - none_gini) <= 5e-5 + 1e-12, "the candidates do not give NONE's Gini"
    rows = []
    start = time.perf_counter()
    for label, tau in levels:
        r = gini_bound(gains, creators, n, PAGE, disc, tau, tol=1e-3, max_iter=600)
        rows.append({
            "level": label,
            "mean_dcg_retained_at_least": tau,
            "bound": _down(r.bound, 5),
            "bound_change": _down(r.bound / none_gini - 1.0, 4),
            "achievable": _up(r.achievable, 5),
            "achievable_change": _up(r.achievable / none_gini - 1.0, 4),
            "achievable_dcg_retained": round(r.dcg_retained, 5),
            "price": round(r.price, 4),
            "iterations": r.iterations,
        })  # fmt: skip
    return {
        "levels": rows,
        "target_gini": round(0.8 * none_gini, 4),
        "seconds": round(time.perf_counter() - start, 1),
    }


def evaluate(
    snap: LoadedSnapshot,
    cases: list[Case],
    held: dict[str, set[str]],
    p: FairnessParams,
    target: NDArray[np.float64],
    *,
    warm: bool = False,
) -> dict[str, Any]:
    """One policy over every user's candidates, one exposure tracker across the users in order.

    The tracker starts empty, as at server start; `warm` first runs every user once unmeasured,
    so the figures are those of a tracker in its steady state.
    """
    names = snap.groups
    n_groups = len(names)
    tracker = fairness.ExposureTracker(p.exposure_window)  # one server, users in order
    for _, items, total in cases if warm else ():
        pipeline.rerank_scores(snap, items, total, PAGE, p, tracker)
    a: dict[str, Any] = {"expo": np.zeros(n_groups), "creator": np.zeros(len(snap.creator_ids)),
         "dcg": [], "ndcg": [], "violations": 0, "fair_pass": 0, "ild": []}  # fmt: skip
    act = p.active()
    for u, items, total in cases:
        page = pipeline.rerank_scores(snap, items, total, PAGE, p, tracker)
        creators = snap.item_creator[items].astype(np.int64)
        groups = snap.item_group[items].astype(np.int64)
        chosen = page.positions
        a["expo"] += fairness.report.group_exposure(groups[chosen], n_groups)
        np.add.at(a["creator"], creators[chosen], fairness.report.discount(chosen.size))
        a["dcg"].append(page.report.dcg_retained)
        a["ndcg"].append(ndcg_at([snap.item_ids[i] for i in items[chosen].tolist()], held[u]))
        a["ild"].append(page.report.intra_list_diversity)
        a["fair_pass"] += page.report.fair_test_passed
        # Independent check of the policy's hard constraints (not the report's flag).
        bad = False
        if Policy.CREATOR_CAP in act:
            c = creators[chosen]
            fillable = np.minimum(np.bincount(creators), p.max_per_creator).sum() >= PAGE
            bad |= bool(fillable and cap_violated(c, p.max_per_creator, p.creator_window))
        need, cls, _ = floor_need(p, act, snap.groups, target, chosen.size)
        if cls.shape[0]:
            bad |= not bool(floors_met(groups[chosen], groups, need, cls).all())
        a["violations"] += bad
    share = a["expo"] / a["expo"].sum()
    ratio = share / np.maximum(target, 1e-12)
    return {
        "policies": [x.value for x in act],
        "group_exposure_share": dict(zip(names, share.round(4).tolist(), strict=True)),
        "exposure_ratio_to_target": dict(zip(names, ratio.round(4).tolist(), strict=True)),
        "mean_dcg_retained": round(float(np.mean(a["dcg"])), 4),
        "min_dcg_retained": round(float(np.min(a["dcg"])), 4),
        "ndcg10": round(float(np.mean(a["ndcg"])), 5),
        "creator_gini_all_creators": round(gini(a["creator"]), 4),
        "creator_gini_exposed_creators": round(gini(a["creator"][a["creator"] > 0]), 4),
        "creators_exposed": int((a["creator"] > 0).sum()),
        "pages_violating_hard_constraints": int(a["violations"]),
        "fair_test_pass_rate": round(a["fair_pass"] / len(cases), 4),
        "mean_intra_list_diversity": round(float(np.mean(a["ild"])), 4),
    }  # fmt: skip


def quality(snap: LoadedSnapshot, held: dict[str, set[str]], n_users: int, seed: int,
            params: FairnessParams) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng(seed)
    users = sorted(u for u in held if u in snap.user_index)
    users = [
        users[i] for i in sorted(rng.choice(len(users), min(n_users, len(users)), replace=False))
    ]
    if not params.protected_groups:
        params = dataclasses.replace(params, protected_groups=tuple(snap.protected_groups))
    cases = []
    for u in users:  # retrieval and ranking once per user; every variant re-ranks the same
        state = build_user_state(snap, u, [], [])
        cands = retrieval.retrieve(snap, state, CANDIDATES)
        cases.append((u, cands.items, ranking.score(snap, state, cands.items).total))
    names = snap.groups
    target = fairness.targets(params, names, snap.group_target_share)
    out: dict[str, Any] = {"variants": {}}
    for name, p in variants(params).items():
        out["variants"][name] = evaluate(snap, cases, held, p, target)
    v = out["variants"]
    d, n = v["default"], v["none"]
    out["default"], out["none"] = d, n
    out["users"] = len(users)
    out["protected_groups"] = list(params.protected_groups)
    out["targets"] = dict(zip(snap.groups, np.round(target, 4).tolist(), strict=True))
    for row in v.values():
        row["ndcg10_change"] = round(row["ndcg10"] / n["ndcg10"] - 1.0, 4) if n["ndcg10"] else 0.0
        row["gini_change"] = round(
            row["creator_gini_all_creators"] / n["creator_gini_all_creators"] - 1.0, 4
        )
    out["ndcg10_change"] = d["ndcg10_change"]
    out["gini_change"] = d["gini_change"]
    out["gini_change_exposed"] = round(
        d["creator_gini_exposed_creators"] / n["creator_gini_exposed_creators"] - 1.0, 4
    )
    out["creator_exposure_weight"] = params.creator_exposure_weight
    out["cap"] = [params.max_per_creator, params.creator_window]
    out["exposure_target_fraction"] = params.exposure_target_fraction
    out["compositions"] = {}
    for name, p in compositions(params):
        row = evaluate(snap, cases, held, p, target)
        ratio = row["exposure_ratio_to_target"]
        warm = evaluate(snap, cases, held, p, target, warm=True)
        out["compositions"][name] = {
            "max_per_creator": p.max_per_creator,
            "creator_window": p.creator_window,
            "exposure_target_fraction": p.exposure_target_fraction,
            "policies": row["policies"],
            "min_exposure_ratio": round(min(ratio.values()), 4),
            "protected_exposure_ratio": ratio[params.protected_groups[0]],
            "mean_dcg_retained": row["mean_dcg_retained"],
            "ndcg10_change": round(row["ndcg10"] / n["ndcg10"] - 1.0, 4) if n["ndcg10"] else 0.0,
            "gini_change": round(
                row["creator_gini_all_creators"] / n["creator_gini_all_creators"] - 1.0, 4
            ),
            "pages_violating_hard_constraints": row["pages_violating_hard_constraints"],
            "warm_tracker": {
                "min_exposure_ratio": round(min(warm["exposure_ratio_to_target"].values()), 4),
                "mean_dcg_retained": warm["mean_dcg_retained"],
                "ndcg10_change": round(warm["ndcg10"] / n["ndcg10"] - 1.0, 4)
                if n["ndcg10"]
                else 0.0,
                "pages_violating_hard_constraints": warm["pages_violating_hard_constraints"],
            },
        }
    out["frontier"] = frontier(snap, cases, target, params.protected_groups, params, CAPS)
    out["reference_gini"] = reference_gini(snap, cases, seed)
    for row in out["reference_gini"].values():
        row["gini_change"] = round(
            row["creator_gini_all_creators"] / n["creator_gini_all_creators"] - 1.0, 4
        )
    levels = [(f"{x:.2f}", x) for x in GINI_LEVELS]
    levels.insert(1, ("default policy", d["mean_dcg_retained"]))
    out["certified_gini"] = certified_gini(snap, cases, levels, n["creator_gini_all_creators"])
    return out


ALL_POLICIES = (
    Policy.CREATOR_CAP, Policy.GROUP_FLOOR, Policy.GROUP_SHARES, Policy.CREATOR_DECAY,
    Policy.DIVERSITY, Policy.AMORTISED_EXPOSURE, Policy.COLD_START_SLOT,
)  # fmt: skip


def latency(snap: LoadedSnapshot, params: FairnessParams, calls: int, seed: int) -> dict[str, Any]:
    """500 real candidates of a user -> a page of 50, every policy on; report included."""
    params = dataclasses.replace(
        params, policies=ALL_POLICIES, protected_groups=tuple(snap.protected_groups)
    )
    rng = np.random.default_rng(seed)
    cases = []
    for u in rng.choice(snap.n_users, 50, replace=False).tolist():
        state = build_user_state(snap, snap.user_ids[u], [], [])
        # Ask for more: retrieval de-duplicates, and the benchmark wants exactly 500.
        items = retrieval.retrieve(snap, state, 2 * CANDIDATES).items[:CANDIDATES]
        cases.append((items, ranking.score(snap, state, items).total))
    tracker = fairness.ExposureTracker(params.exposure_window)
    n_cands = [c[0].size for c in cases]
    stage_us, core_us, core_cpu_us = [], [], []
    for j in range(calls + 200):
        items, total = cases[j % len(cases)]
        t0 = time.perf_counter_ns()
        pipeline.rerank_scores(snap, items, total, 50, params, tracker)
        t1 = time.perf_counter_ns()
        if j >= 200:  # warm-up
            stage_us.append((t1 - t0) / 1e3)
    creators = [snap.item_creator[c[0]].astype(np.int64) for c in cases]
    groups = [snap.item_group[c[0]].astype(np.int64) for c in cases]
    emb = [np.asarray(snap.item_emb[c[0]]) for c in cases]
    ties = [np.arange(c[0].size, dtype=np.int64) for c in cases]
    for j in range(calls + 200):
        i = j % len(cases)
        t0 = time.perf_counter_ns()
        c0 = time.thread_time_ns()
        fairness.rerank(
            cases[i][1], creators[i], groups[i], ties[i], 50, params,
            group_names=snap.groups, target_share=snap.group_target_share,
            embeddings=emb[i], tracker=tracker, creator_key=snap.version,
        )  # fmt: skip
        c1 = time.thread_time_ns()
        t1 = time.perf_counter_ns()
        if j >= 200:
            core_us.append((t1 - t0) / 1e3)
            core_cpu_us.append((c1 - c0) / 1e3)

    def pct(v: list[float]) -> dict[str, float]:
        a = np.asarray(v)
        return {f"p{q}": round(float(np.percentile(a, q)), 1) for q in (50, 90, 99, 99.9)} | {
            "max": round(float(a.max()), 1)
        }

    return {
        "calls": calls,
        "candidates_per_call_min": int(min(n_cands)),
        "candidates_per_call_mean": round(float(np.mean(n_cands)), 1),
        "page": 50,
        "rerank_us": pct(core_us),
        "rerank_thread_cpu_us": pct(core_cpu_us),
        "stage_us": pct(stage_us),
        "backend": "rust" if fairness._rust_select is not None else "python",
        "policies": ", ".join(p.value for p in params.active()),
        "cap": f"{params.max_per_creator} per "
        + (f"{params.creator_window} positions" if params.creator_window else "page"),
        "embedding_dim": int(snap.item_emb.shape[1]),
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                      if ln.startswith("Model name")), "")  # fmt: skip
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _missed(r: dict[str, Any]) -> str:
    """'all', or the issue's targets (1), (2), (3), (5) a composition row misses."""
    checks = (
        ("(1)", r["min_exposure_ratio"] >= 0.9),
        ("(2)", r["mean_dcg_retained"] >= 0.97),
        ("(3)", r["ndcg10_change"] >= -0.03),
        ("(5)", r["pages_violating_hard_constraints"] == 0),
    )
    missed = [name for name, ok in checks if not ok]
    return "not " + ", ".join(missed) if missed else "all"


def _certified_note(q: dict[str, Any]) -> str:
    """The Gini note's sentence on the certified bound, worded from the measured figures."""
    cg = q.get("certified_gini")
    if not cg or not cg["levels"]:
        return ""
    rows, target = cg["levels"], cg["target_gini"]

    def level(r: dict[str, Any]) -> str:
        tau = r["mean_dcg_retained_at_least"]
        return f"{tau:.4f} (the default's)" if r["level"] == "default policy" else f"{tau:.2f}"

    def floor(r: dict[str, Any]) -> str:
        return f"{_down(r['bound'], 3):.3f} ({_down(r['bound_change'], 3):+.1%})"

    first, rest = rows[0], rows[1:]
    proved = [r for r in rows if r["bound"] > target]
    if len(proved) == len(rows):
        verdict = "so -20% is provably out of reach at every level measured"
    elif proved:
        verdict = "so -20% is provably out of reach at " + ", ".join(level(r) for r in proved)
    else:
        verdict = "so the bound rules the -20% target out at none of the levels measured"
    return (
        " Certified lower bounds (table above): no re-ranker of these candidates (randomised, "
        f"or without a creator cap, included) gets the Gini below {floor(first)} while keeping "
        f"mean DCG retained >= {level(first)}"
        + "".join(f"; >= {level(r)}: {floor(r)}" for r in rest)
        + f"; {verdict}. The best randomised re-ranker found at {level(first)} reaches "
        f"{_up(first['achievable'], 3):.3f} ({_up(first['achievable_change'], 3):+.1%})."
    )


def write_section(result: dict[str, Any], path: Path) -> None:
    q, lat, m = result.get("quality"), result["latency"], result["machine"]
    lines = [
        "## Fairness (make bench-fairness)",
        "",
        "Command: `.venv/bin/python bench/bench_fairness.py` (`make bench-fairness`), a few "
        "minutes including the catalogue build; raw numbers in `bench/results/fairness.json`.",
        "",
        f"Machine: `{m['cpu']}`, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}; "
        f"1-minute load average {m['load_average_1m']} when the run ended (the machine is "
        "shared; tail latencies move with the load).",
        "",
    ]
    if q:
        d, n = q["default"], q["none"]
        tg = q["targets"]
        ratio = d["exposure_ratio_to_target"]
        lines += [
            f"Quality: synthetic catalogue ({result['data']['items']:,} items, "
            f"{result['data']['users']:,} users, seed {result['data']['seed']}; the last 10% of "
            "interactions by time held out), snapshot built from the rest; "
            f"{q['users']:,} users, 500 candidates, pages of 20; the default policy "
            f"({', '.join(d['policies'])}) with one exposure tracker across the "
            "users, against the unconstrained page (policy NONE).",
            "",
            "| figure | NONE | default | target | met |",
            "|---|---|---|---|---|",
        ]
        for g in tg:
            lines.append(
                f"| exposure share / target, `{g}` (target {tg[g]:.3f}) | "
                f"{n['exposure_ratio_to_target'][g]:.3f} | {ratio[g]:.3f} | >= 0.90 | "
                f"{'yes' if ratio[g] >= 0.9 else 'no'} |"
            )
        lines += [
            f"| DCG retained (mean over pages; gains = ranking scores) | 1.000 | "
            f"{d['mean_dcg_retained']:.3f} | >= 0.97 | "
            f"{'yes' if d['mean_dcg_retained'] >= 0.97 else 'no'} |",
            f"| DCG retained, worst page | 1.000 | {d['min_dcg_retained']:.3f} | | |",
            f"| NDCG@10 on held-out views | {n['ndcg10']:.4f} | {d['ndcg10']:.4f} "
            f"({q['ndcg10_change']:+.1%}) | >= -3% | "
            f"{'yes' if q['ndcg10_change'] >= -0.03 else 'no'} |",
            f"| creator-exposure Gini, all creators | {n['creator_gini_all_creators']:.3f} | "
            f"{d['creator_gini_all_creators']:.3f} ({q['gini_change']:+.1%}) | <= -20% | "
            f"{'yes' if q['gini_change'] <= -0.2 else 'no'} |",
            f"| creator-exposure Gini, exposed creators | "
            f"{n['creator_gini_exposed_creators']:.3f} | "
            f"{d['creator_gini_exposed_creators']:.3f} ({q['gini_change_exposed']:+.1%}) | | |",
            f"| creators exposed | {n['creators_exposed']} | {d['creators_exposed']} | | |",
            f"| pages violating a hard constraint (independent check) | - | "
            f"{d['pages_violating_hard_constraints']} of {q['users']} | 0 | "
            f"{'yes' if d['pages_violating_hard_constraints'] == 0 else 'no'} |",
            f"| FA*IR test pass rate | {n['fair_test_pass_rate']:.3f} | "
            f"{d['fair_test_pass_rate']:.3f} | | |",
            f"| intra-list diversity | {n['mean_intra_list_diversity']:.3f} | "
            f"{d['mean_intra_list_diversity']:.3f} | | |",
            "",
        ]
    if q:
        lines += [
            "The price of each policy (same users and candidates; exposure ratio = share / "
            "target of the protected group; NDCG@10 change against NONE):",
            "",
            "| variant | protected exposure / target | DCG retained | NDCG@10 change | "
            "Gini change | FA*IR pass rate | pages violating |",
            "|---|---|---|---|---|---|---|",
        ]
        prot = q["protected_groups"] or list(q["targets"])[-1:]
        for name, row in q["variants"].items():
            r = row["exposure_ratio_to_target"].get(prot[0], 0.0)
            lines.append(
                f"| {name} | {r:.3f} | {row['mean_dcg_retained']:.3f} | "
                f"{row['ndcg10_change']:+.1%} | {row['gini_change']:+.1%} | "
                f"{row['fair_test_pass_rate']:.3f} | {row['pages_violating_hard_constraints']} |"
            )
        lines.append("")
    if q and "frontier" in q:
        fr, rg = q["frontier"], q["reference_gini"]
        lines += [
            "What the targets allow together (same users and candidates). The Lagrangian page "
            "sorts each page by `gain / ideal DCG + mu * protected`, one price `mu` for all "
            "pages, bisected to the smallest price whose protected exposure reaches the level: "
            "without the creator cap that is the most DCG any re-ranker can keep at that "
            "exposure (the upper bound adds the duality gap); with the cap the same price goes "
            "through the capped fill:",
            "",
            "| page | protected exposure / target | DCG retained (mean) | worst page | "
            "upper bound |",
            "|---|---|---|---|---|",
        ]
        for key, label in (
            *((k, "Lagrangian, no cap") for k in fr if k.startswith("no_cap_")),
            *((k, f"Lagrangian, cap {lat['cap']}") for k in fr if k.startswith("cap_ratio_")),
            *((k, f"Lagrangian, cap {k.split('_')[1]} per {k.split('_')[3]} positions")
              for k in fr if k.startswith("cap_") and k.count("_") == 5),
        ):  # fmt: skip
            r = fr[key]
            ub = f"{r['dcg_upper_bound']:.4f}" if "dcg_upper_bound" in r else ""
            lines.append(
                f"| {label} | {r['exposure_ratio']:.3f} | {r['mean_dcg_retained']:.4f} | "
                f"{r['min_dcg_retained']:.3f} | {ub} |"
            )
        lines += [
            f"| default policy | {ratio[q['protected_groups'][0]]:.3f} | "
            f"{q['default']['mean_dcg_retained']:.4f} | {q['default']['min_dcg_retained']:.3f} | |",
            "",
            "Creator-exposure Gini of relevance-blind pages (same users, same discount), as a "
            "scale for the -20% target:",
            "",
            "| pages | Gini, all creators (change vs NONE) | Gini, exposed creators | "
            "creators exposed |",
            "|---|---|---|---|",
        ]
        for key, label in (
            ("random_catalogue_pages", "20 items drawn at random from the whole catalogue"),
            ("random_candidate_pages", "20 items drawn at random from the user's 500 candidates"),
        ):
            r = rg[key]
            lines.append(
                f"| {label} | {r['creator_gini_all_creators']:.3f} ({r['gini_change']:+.1%}) | "
                f"{r['creator_gini_exposed_creators']:.3f} | {r['creators_exposed']} |"
            )
        lines += [
            f"| default policy | {q['default']['creator_gini_all_creators']:.3f} "
            f"({q['gini_change']:+.1%}) | {q['default']['creator_gini_exposed_creators']:.3f} | "
            f"{q['default']['creators_exposed']} |",
            "",
        ]
    if q and "certified_gini" in q:
        cg = q["certified_gini"]
        lines += [
            "The lowest creator-exposure Gini (all creators) any re-ranker of the same "
            "candidates can reach while keeping the mean DCG retained at a level "
            "(`server/eval/gini_bound.py`; pages of 20 distinct candidates, deterministic or "
            "randomised, with any creator cap or none): no such re-ranker gets the Gini of its "
            "(expected) exposure below the "
            "certified lower bound (a Lagrangian dual: convexity of the Gini, rearrangement "
            "inequality per page), and the best randomised re-ranker found reaches 'achievable', "
            "so the optimum lies between the two (bound rounded down, achievable up). The -20% "
            f"target is a Gini of at most {cg['target_gini']:.4f}:",
            "",
            "| mean DCG retained at least | certified lower bound (change vs NONE) | "
            "achievable (change vs NONE) | -20% possible |",
            "|---|---|---|---|",
        ]
        for r in cg["levels"]:
            tau = r["mean_dcg_retained_at_least"]
            label = f"{tau:.4f} ({r['level']})" if r["level"] == "default policy" else f"{tau:.2f}"
            possible = "not decided"
            if r["bound"] > cg["target_gini"]:
                possible = "no (proved)"
            elif r["achievable"] <= cg["target_gini"]:
                possible = "yes"
            lines.append(
                f"| {label} | {_down(r['bound'], 3):.3f} ({_down(r['bound_change'], 3):+.1%}) | "
                f"{_up(r['achievable'], 3):.3f} ({_up(r['achievable_change'], 3):+.1%}) | "
                f"{possible} |"
            )
        lines.append("")
    if q and "compositions" in q:
        fr, own = q["frontier"], tuple(q.get("cap", ()))
        lines += [
            "Creator cap x aim of the exposure prices (`exposure_target_fraction`): the default "
            "composition with each cap that still stops a creator flooding a screen (at most "
            "c items of a creator in any w consecutive positions), the prices aiming at a "
            "fraction of each group's target; same users and candidates. 'From cold': one "
            "tracker starting empty, as every figure above (its first pages carry no price yet, "
            "so they are cheap and under-exposed); 'warm': the same users again after one "
            "unmeasured pass, a server's steady state. 'met' checks targets (1) every group "
            ">= 0.90 of its target, (2) DCG retained >= 0.97, (3) NDCG@10 change >= -3%, (5) no "
            "page violating; 'best at 0.90 / 0.95' is the DCG retained of the Lagrangian page "
            "with that cap at exactly 90% / 95% of the protected target:",
            "",
            "| composition | min exposure / target | DCG retained | NDCG@10 change | "
            "Gini change | met | warm: min exposure / target | warm: DCG retained | warm: met | "
            "best at 0.90 / 0.95 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in q["compositions"].items():
            cap = (r["max_per_creator"], r["creator_window"])
            stem = "cap" if cap == own else f"cap_{cap[0]}_in_{cap[1]}"
            best = " / ".join(
                f"{fr[key]['mean_dcg_retained']:.4f}"
                for key in (f"{stem}_ratio_0.90", f"{stem}_ratio_0.95")
                if key in fr
            )
            wr = r["warm_tracker"]
            lines.append(
                f"| {name} | {r['min_exposure_ratio']:.3f} | {r['mean_dcg_retained']:.4f} | "
                f"{r['ndcg10_change']:+.1%} | {r['gini_change']:+.1%} | {_missed(r)} | "
                f"{wr['min_exposure_ratio']:.3f} | {wr['mean_dcg_retained']:.4f} | "
                f"{_missed(wr)} | {best} |"
            )
        lines.append("")
    rl, st, cpu = lat["rerank_us"], lat["stage_us"], lat["rerank_thread_cpu_us"]
    lines += [
        f"Latency: {lat['calls']:,} calls after 200 warm-up; real candidates of 50 users "
        f"({lat['candidates_per_call_min']}-500 per call, mean {lat['candidates_per_call_mean']}) "
        f"cut to 50, every policy on ({lat['policies']}; creator cap {lat['cap']}, MMR over "
        f"{lat['embedding_dim']}-d embeddings), the report included; fill in {lat['backend']}.",
        "",
        "| call | p50 | p90 | p99 | p99.9 | max | target |",
        "|---|---|---|---|---|---|---|",
        f"| `fairness.rerank` | {rl['p50']} µs | {rl['p90']} µs | {rl['p99']} µs | "
        f"{rl['p99.9']} µs | {rl['max']} µs | p99 < 1 ms: {'yes' if rl['p99'] < 1000 else 'no'} |",
        f"| `fairness.rerank`, thread CPU time (excludes time the OS ran other work) | "
        f"{cpu['p50']} µs | {cpu['p90']} µs | {cpu['p99']} µs | {cpu['p99.9']} µs | "
        f"{cpu['max']} µs | |",
        f"| stage (`rerank_scores`: validation, tie-break ids, vectors, re-rank, report) | "
        f"{st['p50']} µs | {st['p90']} µs | {st['p99']} µs | {st['p99.9']} µs | {st['max']} µs | |",
        "",
    ]
    if q:
        v = q["variants"]
        d, fr, rg = q["default"], q.get("frontier", {}), q.get("reference_gini", {})
        prot = q["protected_groups"][0]
        no_cap = v.get("default - creator_cap", {})
        no_cw = v.get("default, creator weight 0.0", {})
        aim1 = v.get("default, exposure aim 1.00", d)
        lean = q.get("compositions", {}).get(
            "2 in 3, aim 0.95, no repeat decay, creator weight 0", {}
        )
        cap_name = lat["cap"].replace(" per ", "-in-").replace(" positions", "")
        lines += [
            "Notes and misses:",
            "",
            f"- DCG retained: {d['mean_dcg_retained']:.3f} against 0.97. Amortised exposure "
            f"lifts `{prot}` from {q['none']['exposure_ratio_to_target'].get(prot, 0):.2f} of "
            f"its target to {d['exposure_ratio_to_target'][prot]:.2f} (the prices aim at "
            f"{q.get('exposure_target_fraction', 1.0):.2f} of the target; aiming at all of it, "
            f"row 'default, exposure aim 1.00', keeps {aim1.get('mean_dcg_retained', 0):.3f}); "
            f"the {cap_name} creator cap costs "
            f"{no_cap.get('mean_dcg_retained', 0) - d['mean_dcg_retained']:.3f} more "
            "(row 'default - creator_cap'); the floor, decay and cold-start slot cost little "
            "once the price is on. The targets conflict: the Lagrangian page above, "
            "the best any re-ranker can do, keeps at most "
            f"{fr.get('no_cap_ratio_0.90', {}).get('dcg_upper_bound', 0):.3f} of the DCG with "
            "the new creators at exactly 90% of their target and no creator cap, and "
            f"{fr.get('cap_ratio_0.90', {}).get('mean_dcg_retained', 0):.3f} with the "
            f"{cap_name} cap. Looser caps that still stop flooding (table 'Creator cap x aim') "
            "raise that bound, but none of the measured compositions holds 0.97 with every group "
            ">= 0.90 in a "
            "server's steady state: the cheapest, 2 in 3 without repeat decay and the "
            "creator-level term, passes from a cold tracker "
            f"({lean.get('mean_dcg_retained', 0):.4f} at "
            f"{lean.get('min_exposure_ratio', 0):.3f} of target) only thanks to the cold "
            "tracker's cheap first pages, and keeps "
            f"{lean.get('warm_tracker', {}).get('mean_dcg_retained', 0):.4f} warm; even the "
            "best 2-in-3 page at 95% of the target keeps "
            f"{fr.get('cap_2_in_3_ratio_0.95', {}).get('mean_dcg_retained', 0):.4f}. Meeting "
            "0.97 needs holding the protected group at ~90% of its target with no margin, or "
            "no creator cap: product decisions, not tuning ones. Held-out NDCG@10 rises: the "
            "lifted items are relevant to the users' held-out views.",
            f"- Creator-exposure Gini (judged on all creators of the catalogue): "
            f"{q['gini_change']:+.1%} against -20%.{_certified_note(q)} For scale, uniformly "
            "random pages from the whole catalogue reach "
            f"{rg.get('random_catalogue_pages', {}).get('gini_change', 0):+.1%} (the catalogue "
            "itself is concentrated: a few creators own hundreds of items, most own one or "
            "two), and random pages from each user's candidates "
            f"{rg.get('random_candidate_pages', {}).get('gini_change', 0):+.1%}. "
            "The creator-level exposure term "
            f"(`creator_exposure_weight` {q.get('creator_exposure_weight', 0)}) exposes "
            f"{d['creators_exposed']} creators instead of "
            f"{no_cw.get('creators_exposed', 0)} (without it) and {q['none']['creators_exposed']} "
            "(NONE). The exposed-creators Gini is reported but not the target: it rises when "
            "a creator gets its first small share of exposure, so it punishes the change the "
            "target asks for.",
            "- Latency: the thread CPU time shows the work (p99 under 1 ms); wall-clock tails on "
            "this shared 2-core machine include time the OS gave to other jobs.",
            "",
        ]
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "\n".join(lines)
    start = text.find("## Fairness (make bench-fairness)")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=4_000)
    ap.add_argument("--eval-users", type=int, default=1_000)
    ap.add_argument("--calls", type=int, default=3_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="print only; keep the files")
    ap.add_argument(
        "--section-only",
        action="store_true",
        help="rewrite the BENCHMARKS.md section from bench/results/fairness.json",
    )
    args = ap.parse_args()
    if args.section_only:
        saved = json.loads((ROOT / "bench" / "results" / "fairness.json").read_text())
        write_section(saved, ROOT / "BENCHMARKS.md")
        return
    params = ServerConfig().fairness
    result: dict[str, Any] = {
        "params": _jsonable(params),
        "data": {"items": args.items, "users": args.users, "seed": args.seed},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path, held = build_data(Path(tmp), args.items, args.users, args.seed)
        snap = open_snapshot(path)
        result["quality"] = quality(snap, held, args.eval_users, args.seed, params)
        result["latency"] = latency(snap, params, args.calls, args.seed)
    result["machine"] = machine()
    print(json.dumps(result, indent=1))
    if not args.no_write:
        out = ROOT / "bench" / "results" / "fairness.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        write_section(result, ROOT / "BENCHMARKS.md")


def _jsonable(p: FairnessParams) -> dict[str, Any]:
    d = dataclasses.asdict(p)
    return json.loads(json.dumps(d, default=lambda o: o.value if hasattr(o, "value") else str(o)))


if __name__ == "__main__":
    main()
