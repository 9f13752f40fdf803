"""`reelrank eval`: split, build, rank every test user through `Rank`, score, compare baselines.

The engine is measured through the same code path the gRPC handler runs
(`server.pipeline.rank.rank`) in-process, or through a live server's `Rank` RPC
(`target="host:port"`, which must serve a snapshot built from this split's training file),
with the fairness stage off (policy none) and on (the creator cap; the server's default
policy; in-process, optionally the default without each of its policies and with each optional
one, so the price of each is visible). The most-popular and ItemKNN baselines are computed here
from the same training pairs and scored by the same metric code.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from server.data import loaders
from server.eval import metrics
from server.eval.splits import Split, make_split
from server.index import builder, collab
from server.pipeline.types import PRESETS, FairnessParams, Policy

log = logging.getLogger(__name__)

RankFn = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Catalogue:
    item_ids: NDArray[np.str_]
    index: dict[str, int]
    item_creator: NDArray[np.int64]
    n_creators: int
    #: Fairness group code per item (into `groups`), derived as the build derives it.
    item_group: NDArray[np.int64]
    groups: list[str]

    @staticmethod
    def from_items(items_path: Path, config: builder.BuildConfig | None = None) -> Catalogue:
        items = loaders.load_items(Path(items_path))
        ids = np.asarray(items.item_id, dtype=str)
        _, creators = np.unique(np.asarray(items.creator_id, dtype=str), return_inverse=True)
        codes, groups = builder.item_groups(items, config or builder.BuildConfig(), creators)
        return Catalogue(
            ids,
            {s: i for i, s in enumerate(ids.tolist())},
            creators.astype(np.int64),
            int(creators.max(initial=-1)) + 1,
            codes.astype(np.int64),
            groups,
        )


def _train_matrix(split: Split, cat: Catalogue) -> tuple[sp.csr_matrix, dict[str, int]]:
    """Binary users x catalogue-items matrix of the training split's positive pairs."""
    inter = loaders.load_interactions(split.train_path)
    pos = cat.index
    item_rows = np.array([pos.get(str(i), -1) for i in inter.item_vocab], np.int64)
    it = item_rows[inter.item_index]
    ok = it >= 0
    shape = (len(inter.user_vocab), len(cat.item_ids))
    signed = sp.csr_matrix(
        (inter.weight[ok].astype(np.float64), (inter.user_index[ok], it[ok])), shape=shape
    )
    signed.sum_duplicates()
    users = {str(u): j for j, u in enumerate(inter.user_vocab.tolist())}
    return collab.binary_matrix(signed), users


def _top_k(scores: NDArray[np.float64], seen: NDArray[np.int32], k: int) -> NDArray[np.int64]:
    s = scores.astype(np.float64).copy()
    s[seen] = -np.inf
    kk = min(k, s.size)
    top = np.argpartition(-s, kk - 1)[:kk]
    top = top[np.lexsort((top, -s[top]))]
    out: NDArray[np.int64] = top[np.isfinite(s[top])]
    return out


def baselines(
    split: Split, cat: Catalogue, users: list[str], k: int, knn_neighbors: int = 200
) -> dict[str, dict[str, list[int]]]:
    """Most-popular and ItemKNN top-k lists (catalogue rows) for `users`."""
    x, uidx = _train_matrix(split, cat)
    pop = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
    knn = collab.item_knn(x, knn_neighbors, max_items_per_user=10**9)
    out: dict[str, dict[str, list[int]]] = {"most_popular": {}, "item_knn": {}}
    for u in users:
        j = uidx.get(u)
        if j is None:
            continue
        row = x[j]
        seen = row.indices.astype(np.int32)
        out["most_popular"][u] = _top_k(pop, seen, k).tolist()
        knn_scores = np.asarray(knn @ row.T.toarray()).ravel()
        out["item_knn"][u] = _top_k(knn_scores, seen, k).tolist()
    return out


def in_process_rankers(
    snapshot_dir: Path,
    num_candidates: int,
    *,
    with_default: bool = True,
    fairness_ablation: bool = False,
) -> dict[str, RankFn]:
    """Rank functions over a snapshot through `server.pipeline.rank.rank`: fairness off, the
    creator cap alone, and (optionally) the server's full default policy composition; with
    `fairness_ablation`, also the default without each of its policies and with each optional
    one. Each function keeps its own exposure tracker, as a server keeps one across requests,
    so that amortised exposure acts in-process as it does when served."""
    from server.config import ServerConfig
    from server.index.loaded import open_snapshot
    from server.pipeline import rank as pipeline
    from server.pipeline.fairness import ExposureTracker

    snap = open_snapshot(snapshot_dir)
    default = ServerConfig().fairness
    # As the Rank handler resolves a request naming only a policy (services/convert.py):
    # the named policy replaces the composition, the other settings stay the server's.
    off = dataclasses.replace(default, policy=Policy.NONE, policies=())
    cap = dataclasses.replace(default, policy=Policy.CREATOR_CAP, policies=())

    def make(params: FairnessParams) -> RankFn:
        tracker = ExposureTracker()

        def fn(user: str, k: int) -> list[str]:
            r = pipeline.rank(snap, user, [], [], k, num_candidates, params, tracker=tracker)
            return [snap.item_ids[int(i)] for i in r.items.tolist()]

        return fn

    out = {"reelrank": make(off), "reelrank_creator_cap": make(cap)}
    if with_default or fairness_ablation:
        out["reelrank_creator_cap_window5"] = make(dataclasses.replace(cap, creator_window=5))
        out["reelrank_default_policy"] = make(default)
    if fairness_ablation:
        for name, params in ablation(default).items():
            out[name] = make(params)
    return out


def ablation(
    default: FairnessParams, name: str = "reelrank_default_policy"
) -> dict[str, FairnessParams]:
    """`default`'s composition without each of its policies (`NAME - policy`) and with each
    policy it leaves out (`NAME + policy`), in declaration order."""
    active = default.active()
    out: dict[str, FairnessParams] = {}
    for pol in active:
        rest = tuple(p for p in active if p is not pol)
        # Without its last policy the composition is empty, i.e. fairness off: say so.
        out[f"{name} - {pol.value}"] = dataclasses.replace(
            default, policy=Policy.NONE if not rest else default.policy, policies=rest
        )
    for pol in Policy:
        if pol not in PRESETS and pol not in active:
            out[f"{name} + {pol.value}"] = dataclasses.replace(default, policies=(*active, pol))
    return out


def grpc_rankers(
    target: str, num_candidates: int, *, with_default: bool = True
) -> dict[str, RankFn]:
    """Rank functions calling a live server's `Rank`: policy none, creator cap, server default."""
    from client import RankingClient
    from server.api.reelrank.v1 import types_pb2

    client = RankingClient(target)

    def make(policy: str | types_pb2.FairnessOptions | None) -> RankFn:
        def fn(user: str, k: int) -> list[str]:
            resp = client.rank(
                user, k, fairness_policy=policy, num_candidates=num_candidates, timeout=30.0
            )
            return [it.item_id for it in resp.items]

        return fn

    out = {"reelrank": make("none"), "reelrank_creator_cap": make("creator_cap")}
    if with_default:
        out["reelrank_creator_cap_window5"] = make(
            types_pb2.FairnessOptions(
                policy=types_pb2.FAIRNESS_POLICY_CREATOR_CAP, creator_window=5
            )
        )
        out["reelrank_default_policy"] = make(None)
    return out


def evaluate(
    interactions_path: Path,
    items_path: Path,
    out_dir: Path,
    *,
    kind: str = "random",
    seed: int = 0,
    ks: tuple[int, ...] = (10, 20),
    target: str | None = None,
    num_candidates: int = 500,
    max_users: int = 0,
    config: builder.BuildConfig | None = None,
    with_baselines: bool = True,
    with_default_policy: bool = True,
    fairness_ablation: bool = False,
    return_lists: bool = False,
) -> dict[str, Any]:
    """Run one split end to end and return every method's metrics (see module doc).

    `fairness_ablation` adds the default fairness composition without each of its policies and
    with each optional one (`ablation`), in-process only: over gRPC every variant would share
    the server's exposure tracker, so its amortised-exposure prices would mix them."""
    if fairness_ablation and target:
        raise ValueError(
            "the fairness ablation runs in-process (each variant needs an exposure tracker of "
            "its own); drop the live-server target to run it"
        )
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    split = make_split(Path(interactions_path), out_dir, kind, seed)
    cat = Catalogue.from_items(Path(items_path), config)
    test = {u: {cat.index[i] for i in s if i in cat.index} for u, s in split.test.items()}
    users = sorted(u for u, s in test.items() if s)
    if max_users and len(users) > max_users:
        rng = np.random.default_rng(seed)
        users = sorted(rng.choice(users, size=max_users, replace=False).tolist())
    test = {u: test[u] for u in users}
    k = max(ks)
    result: dict[str, Any] = {
        "split": kind,
        "seed": seed,
        "train_rows": split.train_rows,
        "test_pairs": split.test_pairs,
        "users": len(users),
        # Each fairness group's share of the catalogue: the default exposure target.
        "group_catalogue_share": {
            g: round(float(np.mean(cat.item_group == i)), 5) for i, g in enumerate(cat.groups)
        },
        "methods": {},
    }
    lists: dict[str, dict[str, list[int]]] = {}
    if with_baselines:
        lists.update(baselines(split, cat, users, k))
    if target:
        rankers = grpc_rankers(target, num_candidates, with_default=with_default_policy)
        result["served_by"] = f"grpc {target}"
    else:
        manifest = builder.build_snapshot(
            split.train_path, Path(items_path), out_dir / "snapshots", config
        )
        result["snapshot"] = {
            "path": manifest["path"],
            "blend_weights": manifest["blend_weights"],
            "blend_fit": manifest.get("blend_fit"),
            "collaborative": manifest.get("collaborative"),
            "ann": manifest["ann"],
            "build_seconds": manifest["build_seconds"],
        }
        rankers = in_process_rankers(
            Path(manifest["path"]),
            num_candidates,
            with_default=with_default_policy,
            fairness_ablation=fairness_ablation,
        )
        result["served_by"] = "in-process server.pipeline.rank.rank"
    # Every method's page is requested at each k (a fairness re-ranker's top 10 of a 20-item
    # page may differ from its 10-item page); baselines are plain sorts, so prefixes serve.
    per_k: dict[str, dict[int, dict[str, list[int]]]] = {
        name: {kk: {u: r[:kk] for u, r in ranked.items()} for kk in ks}
        for name, ranked in lists.items()
    }
    for name, fn in rankers.items():
        t = time.perf_counter()
        per_k[name] = {kk: {u: [cat.index[i] for i in fn(u, kk)] for u in users} for kk in ks}
        lists[name] = per_k[name][k]
        result.setdefault("rank_seconds", {})[name] = round(time.perf_counter() - t, 3)
    for name, by_k in per_k.items():
        summary: dict[str, float] = {}
        for kk, ranked in by_k.items():
            summary.update(
                metrics.summarise(
                    ranked,
                    test,
                    ks=(kk,),
                    n_items=len(cat.item_ids),
                    item_creator=cat.item_creator,
                    n_creators=cat.n_creators,
                    item_group=cat.item_group,
                    groups=cat.groups,
                )
            )
        result["methods"][name] = {key: round(v, 5) for key, v in summary.items()}
    if return_lists:
        result["lists"] = {
            name: {u: [str(cat.item_ids[i]) for i in r] for u, r in ranked.items()}
            for name, ranked in lists.items()
        }
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result
