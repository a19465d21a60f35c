"""FRAUDAR reference: peeling, the density metric, planted blocks, net likes."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from detectors.reference.fraudar import (
    column_weights,
    dense_blocks,
    greedy_peel,
    net_likes,
    run_fraudar,
)

Event = dict[str, Any]


# --- synthetic graphs ---------------------------------------------------------------------------


def honest_graph(
    rng: np.random.Generator, n_accounts: int, n_posts: int, mean_degree: float, zipf: float
) -> set[tuple[str, str]]:
    """Sparse random likes; post popularity ~ rank**-zipf (0 = uniform)."""
    pop = 1.0 / np.arange(1, n_posts + 1) ** zipf
    pop /= pop.sum()
    deg = rng.geometric(1.0 / mean_degree, size=n_accounts)
    rows = np.repeat(np.arange(n_accounts), deg)
    cols = rng.choice(n_posts, size=rows.size, p=pop)
    return {(f"u{i}", f"p{j}") for i, j in zip(rows.tolist(), cols.tolist(), strict=True)}


def plant(
    rng: np.random.Generator,
    edges: set[tuple[str, str]],
    name: str,
    n_accounts: int,
    n_posts: int,
    density: float,
    camouflage: str,
    honest_posts: int,
    zipf: float = 1.0,
) -> set[str]:
    """Add a fraud block; each fraud account also likes as many honest posts (camouflage)."""
    accounts = [f"{name}a{i}" for i in range(n_accounts)]
    targets = [f"{name}t{j}" for j in range(n_posts)]
    mask = rng.random((n_accounts, n_posts)) < density
    for i, j in zip(*np.nonzero(mask), strict=True):
        edges.add((accounts[i], targets[j]))
    n_camo = int(density * n_posts)
    pop = 1.0 / np.arange(1, honest_posts + 1) ** zipf
    pop /= pop.sum()
    for a in accounts:
        if camouflage == "random":
            picks = rng.choice(honest_posts, size=n_camo)
        elif camouflage == "popular":
            picks = rng.choice(honest_posts, size=n_camo, p=pop)
        else:
            picks = np.zeros(0, dtype=int)
        edges.update((a, f"p{j}") for j in picks.tolist())
    return set(accounts)


def as_events(rng: np.random.Generator, edges: set[tuple[str, str]], churn: int = 0) -> list[Event]:
    """Like events in shuffled order, plus ``churn`` extra like+unlike pairs that net out."""
    pairs = sorted(edges)
    events: list[Event] = [
        {
            "event_id": f"e{n}",
            "type": "like",
            "actor_id": a,
            "post_id": p,
            "author_id": "x",
            "ts": float(rng.uniform(0, 86_400)),
        }
        for n, (a, p) in enumerate(pairs)
    ]
    accounts = sorted({a for a, _ in pairs})
    for n in range(churn):
        a = accounts[int(rng.integers(len(accounts)))]
        t = float(rng.uniform(0, 86_000))
        post = f"churn{n}"
        events.append(
            {
                "event_id": f"c{n}l",
                "type": "like",
                "actor_id": a,
                "post_id": post,
                "author_id": "x",
                "ts": t,
            }
        )
        events.append(
            {
                "event_id": f"c{n}u",
                "type": "unlike",
                "actor_id": a,
                "post_id": post,
                "author_id": "x",
                "ts": t + 30.0,
            }
        )
    order = rng.permutation(len(events))
    return [events[i] for i in order]


def precision_recall(flagged: frozenset[str] | set[str], truth: set[str]) -> tuple[float, float]:
    tp = len(flagged & truth)
    return tp / max(1, len(flagged)), tp / len(truth)


# --- the metric and the peeling -----------------------------------------------------------------


def brute_force_best(rows: Sequence[int], cols: Sequence[int], w: Sequence[float]) -> float:
    """Exact max of g over all node subsets (tiny graphs only)."""
    nodes = [("r", r) for r in sorted(set(rows))] + [("c", c) for c in sorted(set(cols))]
    best = 0.0
    for k in range(1, len(nodes) + 1):
        for subset in itertools.combinations(nodes, k):
            s = set(subset)
            f = sum(
                x for r, c, x in zip(rows, cols, w, strict=True) if ("r", r) in s and ("c", c) in s
            )
            best = max(best, f / k)
    return best


def naive_peel(
    rows: list[int], cols: list[int], w: list[float]
) -> tuple[set[int], set[int], float]:
    """Quadratic greedy peeling without a heap: ties go to rows, then to the lower id."""
    r_alive, c_alive = set(rows), set(cols)
    edges = list(zip(rows, cols, w, strict=True))

    def mass() -> float:
        return sum(x for r, c, x in edges if r in r_alive and c in c_alive)

    best = mass() / (len(r_alive) + len(c_alive))
    best_sets = (set(r_alive), set(c_alive))
    while r_alive and c_alive:
        cand = [(sum(x for r, c, x in edges if r == u and c in c_alive), 0, u) for u in r_alive]
        cand += [(sum(x for r, c, x in edges if c == u and r in r_alive), 1, u) for u in c_alive]
        _, side, u = min(cand)
        (r_alive if side == 0 else c_alive).discard(u)
        g = mass() / (len(r_alive) + len(c_alive))
        if g > best:
            best, best_sets = g, (set(r_alive), set(c_alive))
    return best_sets[0], best_sets[1], best


@pytest.mark.parametrize("seed", range(12))
def test_peel_matches_naive_peeling_and_is_within_half_of_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_r, n_c = int(rng.integers(2, 6)), int(rng.integers(2, 5))
    mask = rng.random((n_r, n_c)) < 0.5
    mask[0, 0] = True
    rows, cols = (x.tolist() for x in np.nonzero(mask))
    # Dyadic weights are exact in floating point, so the tie-breaking is comparable.
    w = rng.choice([0.5, 1.0, 1.5, 2.0], size=len(rows)).tolist()

    peel = greedy_peel(rows, cols, w)
    r_best, c_best, g_best = naive_peel(rows, cols, w)
    assert set(peel.rows.tolist()) == r_best
    assert set(peel.cols.tolist()) == c_best
    assert peel.density == pytest.approx(g_best)
    # The metric: g = f / |S| over the returned block, and the whole-graph g.
    inside = [x for r, c, x in zip(rows, cols, w, strict=True) if r in r_best and c in c_best]
    assert peel.mass == pytest.approx(sum(inside))
    assert peel.density == pytest.approx(sum(inside) / (len(r_best) + len(c_best)))
    assert peel.graph_density == pytest.approx(sum(w) / (len(set(rows)) + len(set(cols))))
    # FRAUDAR's guarantee: at least half the optimal density.
    assert peel.density >= brute_force_best(rows, cols, w) / 2 - 1e-12


def test_peel_keeps_caller_ids_and_ignores_isolated_ids() -> None:
    peel = greedy_peel([10, 10, 30, 30], [7, 9, 7, 9], [1.0] * 4)
    assert peel.rows.tolist() == [10, 30]
    assert peel.cols.tolist() == [7, 9]
    assert peel.density == 1.0


def test_peel_empty_and_bad_input() -> None:
    peel = greedy_peel([], [], [])
    assert peel.rows.size == 0 and peel.cols.size == 0 and peel.density == 0.0
    with pytest.raises(ValueError):
        greedy_peel([0, 1], [0], [1.0, 1.0])
    with pytest.raises(ValueError):
        greedy_peel([0], [0], [0.0])


def test_column_weights() -> None:
    w = column_weights([1, 10, 1000])
    assert w.tolist() == pytest.approx([1 / math.log(6), 1 / math.log(15), 1 / math.log(1005)])
    assert column_weights([4], c=2.0).tolist() == pytest.approx([1 / math.log(6)])
    with pytest.raises(ValueError):
        column_weights([1], c=1.0)
    with pytest.raises(ValueError):
        column_weights([1], weighting="sqrt")  # type: ignore[arg-type]


# --- net likes ----------------------------------------------------------------------------------


def test_net_likes_unlike_relike_duplicates_and_order() -> None:
    ev: list[Event] = [
        {"event_id": "3", "type": "like", "actor_id": "a", "post_id": "p", "ts": 30.0},  # re-like
        {"event_id": "1", "type": "like", "actor_id": "a", "post_id": "p", "ts": 10.0},
        {"event_id": "2", "type": "unlike", "actor_id": "a", "post_id": "p", "ts": 20.0},
        {"event_id": "4", "type": "like", "actor_id": "b", "post_id": "p", "ts": 5.0},
        {"event_id": "5", "type": "unlike", "actor_id": "b", "post_id": "p", "ts": 6.0},
        {"event_id": "4", "type": "like", "actor_id": "b", "post_id": "p", "ts": 5.0},  # redelivery
        {"event_id": "6", "type": "like", "actor_id": "c", "post_id": "q", "ts": 1.0},
        {"event_id": "7", "type": "like", "actor_id": "c", "post_id": "q", "ts": 2.0},  # repeat
        {"event_id": "8", "type": "account", "account_id": "c", "ts": 99.0},
    ]
    graph = net_likes(ev)
    assert graph.edges == [("a", "p"), ("c", "q")]
    assert graph.capture_end == 30.0
    assert net_likes([]) == ([], None)


def test_bad_events_raise() -> None:
    with pytest.raises(ValueError, match="post_id"):
        net_likes([{"type": "like", "actor_id": "a", "ts": 1.0}])
    with pytest.raises(ValueError, match="epoch seconds"):
        net_likes([{"type": "like", "actor_id": "a", "post_id": "p", "ts": "2024-01-01T00:00:00Z"}])
    with pytest.raises(ValueError, match="finite"):
        net_likes([{"type": "like", "actor_id": "a", "post_id": "p", "ts": math.nan}])


# --- blocks and results -------------------------------------------------------------------------


@pytest.mark.parametrize("camouflage", ["none", "random", "popular"])
def test_planted_block_with_camouflage_is_recovered(camouflage: str) -> None:
    rng = np.random.default_rng(20160813)
    edges = honest_graph(rng, n_accounts=4000, n_posts=2000, mean_degree=8.0, zipf=1.0)
    fraud = plant(rng, edges, "f", 80, 50, 0.5, camouflage, honest_posts=2000)
    events = as_events(rng, edges, churn=500)

    res = run_fraudar(events)  # defaults: k=3, log weighting, min_density_ratio=2

    precision, recall = precision_recall(res.flagged, fraud)
    assert precision >= 0.95
    assert recall >= 0.95
    top = res.blocks[0]
    assert top.flagged and all(not b.flagged for b in res.blocks[1:])
    assert len(top.posts & {f"ft{j}" for j in range(50)}) >= 48
    end = max(e["ts"] for e in events)
    assert set(res.first_detection.values()) == {end}
    assert set(res.scores) == res.flagged


def test_log_weighting_keeps_heavy_honest_accounts_out_of_a_camouflaged_block() -> None:
    # A sparse farm whose accounts also like popular posts (popularity-biased camouflage).
    rng = np.random.default_rng(7)
    edges = honest_graph(rng, n_accounts=4000, n_posts=2000, mean_degree=8.0, zipf=1.2)
    fraud = plant(rng, edges, "f", 80, 50, 0.3, "none", honest_posts=2000)
    pop = 1.0 / np.arange(1, 2001) ** 1.2
    pop /= pop.sum()
    for a in sorted(fraud):
        edges.update((a, f"p{j}") for j in rng.choice(2000, size=45, p=pop).tolist())

    log_block = dense_blocks(edges, k=1)[0]
    plain_block = dense_blocks(edges, k=1, weighting="none")[0]

    assert log_block.accounts == fraud
    assert {f"ft{j}" for j in range(50)} <= log_block.posts
    # Unweighted, honest accounts that like many popular posts join the block.
    assert fraud < plain_block.accounts


def test_two_planted_blocks_found_with_k_2() -> None:
    rng = np.random.default_rng(3)
    edges = honest_graph(rng, n_accounts=4000, n_posts=2000, mean_degree=8.0, zipf=1.0)
    farm_a = plant(rng, edges, "A", 80, 50, 0.6, "random", honest_posts=2000)
    farm_b = plant(rng, edges, "B", 60, 40, 0.5, "random", honest_posts=2000)

    blocks = dense_blocks(edges, k=2)

    assert len(blocks) == 2
    found = [b.accounts for b in blocks]
    for got, want in zip(found, [farm_a, farm_b], strict=True):  # the denser farm first
        assert len(got & want) / len(got | want) >= 0.9
    assert all(b.flagged for b in blocks)
    # Block 2 was searched without block 1's edges.
    assert not (blocks[0].posts & blocks[1].posts & {f"At{j}" for j in range(50)})


def test_min_density_ratio_zero_flags_every_block_and_scores_take_the_max() -> None:
    edges = [(f"a{i}", f"p{j}") for i in range(4) for j in range(4)]
    edges += [(f"u{i}", f"r{i}") for i in range(30)] + [("a0", "r0"), ("a0", "r1")]
    ev = [{"type": "like", "actor_id": a, "post_id": p, "ts": 1.0} for a, p in edges]
    strict = run_fraudar(ev, k=3)
    loose = run_fraudar(ev, k=3, min_density_ratio=0.0, capture_end=123.0)
    assert strict.flagged == {"a0", "a1", "a2", "a3"}
    assert len(loose.flagged) > len(strict.flagged)
    assert all(b.flagged for b in loose.blocks)
    assert set(loose.first_detection.values()) == {123.0}
    for account, score in loose.scores.items():
        assert score == max(b.density for b in loose.blocks if account in b.accounts)


def test_k_stops_when_edges_run_out_and_empty_capture() -> None:
    blocks = dense_blocks([("a", "p"), ("b", "p")], k=5)
    assert len(blocks) == 1
    assert dense_blocks([("a", "p")], k=0) == []
    res = run_fraudar([])
    assert res.blocks == () and res.flagged == frozenset() and res.capture_end is None


def test_200k_edges_in_a_few_seconds() -> None:
    rng = np.random.default_rng(0)
    n_acc, n_post = 20_000, 10_000
    rows = rng.integers(0, n_acc, 210_000)
    cols = rng.integers(0, n_post, 210_000)
    pairs = np.unique(np.stack([rows, cols], axis=1), axis=0)[:200_000]
    rows, cols = pairs[:, 0], pairs[:, 1]
    start = time.perf_counter()
    peel = greedy_peel(rows, cols, column_weights(np.bincount(cols))[cols])
    elapsed = time.perf_counter() - start
    assert peel.rows.size > 0
    assert elapsed < 10.0  # about 0.3 s on a 2-core dev machine
