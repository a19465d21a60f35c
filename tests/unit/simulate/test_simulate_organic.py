"""Organic traffic: human noise, new-but-normal accounts, audience consistency, real data."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from stream.simulate.checks import (
    LoadedScenario,
    account_snapshots,
    actions_by_actor,
    contract_problems,
    last_post_snapshots,
    like_counts,
    like_state_problems,
)
from stream.simulate.organic import pace
from stream.simulate.sources import BITCOIN_FILE, default_data_dir, pass_fractions, slice_laps
from stream.simulate.world import IdFactory

Simulate = Callable[..., LoadedScenario]


def organic_actions(run: LoadedScenario) -> dict[str, list[dict[str, object]]]:
    organic = set(run.truth["organic_accounts"])
    return {
        actor: actions
        for actor, actions in actions_by_actor(run.events).items()
        if actor in organic
    }


def unlike_delays(run: LoadedScenario) -> tuple[int, list[float]]:
    """Organic like count and the delay of every organic unlike after its like."""
    likes, delays = 0, []
    for actions in organic_actions(run).values():
        liked_at: dict[object, float] = {}
        for action in actions:
            ts = float(action["ts"])  # type: ignore[arg-type]
            if action["type"] == "like":
                likes += 1
                liked_at[action["post_id"]] = ts
            else:
                delays.append(ts - liked_at[action["post_id"]])
    return likes, delays


@pytest.mark.parametrize("run_name", ["synthetic_run", "wikipedia_run"])
def test_organic_unlikes_are_rare_and_mostly_quick(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: LoadedScenario = request.getfixturevalue(run_name)
    likes, delays = unlike_delays(run)
    assert likes > 1000
    assert 0.005 < len(delays) / likes < 0.08
    assert statistics.median(delays) < 10 * 60
    assert sum(delay < 5 * 60 for delay in delays) / len(delays) > 0.6


def test_new_normal_accounts_are_new_and_ordinary(synthetic_run: LoadedScenario) -> None:
    truth = synthetic_run.truth
    snapshots = account_snapshots(synthetic_run.events)
    by_actor = actions_by_actor(synthetic_run.events)
    assert truth["new_normal_accounts"]
    for account in truth["new_normal_accounts"]:
        first = snapshots[account][0]
        likes = [event for event in by_actor[account] if event["type"] == "like"]
        assert truth["start"] <= first["created_at"] < likes[0]["ts"]
        assert 3 <= len(likes) <= 80
        assert first["followers"] <= 60


def test_organic_authors_have_followers_in_line_with_their_likes(
    synthetic_run: LoadedScenario,
) -> None:
    organic = set(synthetic_run.truth["organic_accounts"])
    snapshots = account_snapshots(synthetic_run.events)
    likes = like_counts(
        [event for event in synthetic_run.events if event.get("actor_id") in organic]
    )
    by_author: dict[str, list[int]] = defaultdict(list)
    for post in last_post_snapshots(synthetic_run.events).values():
        by_author[post["author_id"]].append(likes.get(post["post_id"], 0))
    rates = []
    for author, counts in by_author.items():
        top = sorted(counts, reverse=True)[:3]
        if author in organic and sum(top) / len(top) >= 20:
            rates.append(sum(top) / len(top) / snapshots[author][-1]["followers"])
    assert len(rates) >= 10
    assert 0.02 <= statistics.median(rates) <= 0.04
    assert max(rates) < 0.1


def test_organic_posts_have_plausible_views_and_completions(
    synthetic_run: LoadedScenario,
) -> None:
    labelled = {post for attack in synthetic_run.truth["attacks"] for post in attack["posts"]}
    ratios = [
        post["completions"] / post["views"]
        for post_id, post in last_post_snapshots(synthetic_run.events).items()
        if post_id not in labelled and post["views"] >= 50
    ]
    assert len(ratios) > 20
    assert min(ratios) >= 0.15 and max(ratios) <= 0.65


def test_follower_counts_are_heavy_tailed(synthetic_run: LoadedScenario) -> None:
    organic = set(synthetic_run.truth["organic_accounts"])
    followers = [
        history[0]["followers"]
        for account, history in account_snapshots(synthetic_run.events).items()
        if account in organic
    ]
    assert max(followers) > 20 * statistics.median(followers)


def test_popular_posts_stand_out(synthetic_run: LoadedScenario) -> None:
    organic = set(synthetic_run.truth["organic_accounts"])
    counts = Counter(
        event["post_id"]
        for event in synthetic_run.events
        if event["type"] == "like" and event["actor_id"] in organic
    )
    assert max(counts.values()) > 20 * statistics.median(counts.values())


def test_no_organic_account_likes_like_a_fast_burst(synthetic_run: LoadedScenario) -> None:
    for actions in organic_actions(synthetic_run).values():
        times = np.array([float(a["ts"]) for a in actions if a["type"] == "like"])  # type: ignore[arg-type]
        if len(times) >= 50:
            in_ten_minutes = np.searchsorted(times, times + 600) - np.arange(len(times))
            assert in_ten_minutes.max() < 50


def test_wikipedia_scenario_is_valid_and_labelled(wikipedia_run: LoadedScenario) -> None:
    assert [e for e in wikipedia_run.events if contract_problems(e)] == []
    assert like_state_problems(wikipedia_run.events) == []
    kinds = {attack["kind"] for attack in wikipedia_run.truth["attacks"]}
    assert kinds == {"burst", "new_account_spike", "fan_imbalance", "swarm", "churn", "ring"}
    assert wikipedia_run.truth["organic"] == "wikipedia"
    assert len(wikipedia_run.truth["organic_accounts"]) > 1000


def test_bitcoin_scenario_has_reciprocal_organic_likes(run_simulate: Simulate) -> None:
    if not (default_data_dir() / BITCOIN_FILE).is_file():
        pytest.skip(f"{BITCOIN_FILE} not found in {default_data_dir()}")
    run = run_simulate("--organic", "bitcoin", "--hours", "0.5", "--attacks", "none")
    assert run.truth["attacks"] == []
    assert like_state_problems(run.events) == []
    pairs = {
        (event["actor_id"], event["author_id"]) for event in run.events if event["type"] == "like"
    }
    assert sum((author, actor) in pairs for actor, author in pairs) > 10


def test_pass_fractions_split_the_scale() -> None:
    assert pass_fractions(1.0) == [1.0]
    assert pass_fractions(0.25) == [0.25]
    assert pass_fractions(2.5) == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError):
        pass_fractions(0)


def test_slice_laps_wraps_around_the_data() -> None:
    times = np.array([0.0, 3.0, 6.0, 9.0])
    rows, elapsed = slice_laps(times, span=10.0, window=12.0, offset=5.0)
    assert rows.tolist() == [2, 3, 0, 1, 2]
    assert elapsed.tolist() == [1.0, 4.0, 5.0, 8.0, 11.0]


def test_pace_keeps_order_and_spaces_each_users_likes() -> None:
    rng = np.random.default_rng(0)
    users = np.array([0, 0, 0, 1, 1])
    ts = np.array([10.0, 10.1, 10.2, 10.0, 50.0])
    order, paced, gap_before = pace(users, ts, rng, user_count=2)
    assert users[order].tolist() == [0, 0, 0, 1, 1]
    assert np.all(paced >= ts[order])
    assert np.all(np.diff(paced[:3]) >= 1.0)
    assert paced[4] == pytest.approx(50.0)
    assert np.isinf(gap_before[0]) and np.isinf(gap_before[3])


def test_id_factory_is_deterministic_and_opaque() -> None:
    first, second = IdFactory(3), IdFactory(3)
    assert first.make("u", "wiki-user:1") == second.make("u", "wiki-user:1")
    assert first.make("u", "wiki-user:1") != IdFactory(4).make("u", "wiki-user:1")
    assert "wiki" not in first.make("u", "wiki-user:1")
    many = {first.make("u", f"key-{index}") for index in range(5000)}
    assert len(many) == 5000


def test_a_few_organic_accounts_share_a_household_device(synthetic_run: LoadedScenario) -> None:
    organic = set(synthetic_run.truth["organic_accounts"])
    users: dict[str, set[str]] = defaultdict(set)
    for event in synthetic_run.events:
        if event["type"] == "like" and event["actor_id"] in organic:
            users[event["device_id"]].add(event["actor_id"])
    sizes = Counter(len(accounts) for accounts in users.values())
    assert max(sizes) <= 4
    shared = sum(size * count for size, count in sizes.items() if size > 1)
    assert 0 < shared < 0.15 * len(organic)
