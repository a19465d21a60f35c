"""truth.json: every labelled attack shows its kind's pattern in the capture."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from stream.simulate import ATTACK_KINDS
from stream.simulate.checks import (
    LoadedScenario,
    account_snapshots,
    actions_by_actor,
    last_post_snapshots,
    like_counts,
)

Attack = dict[str, Any]


def attacks_of(run: LoadedScenario, kind: str, variant: str | None = None) -> list[Attack]:
    found = [
        attack
        for attack in run.truth["attacks"]
        if attack["kind"] == kind and variant in (None, attack["params"]["variant"])
    ]
    assert found, f"no {kind} {variant or ''} attack"
    return found


def fake_likes(run: LoadedScenario, attack: Attack) -> list[dict[str, Any]]:
    """Likes by the attack's accounts inside its time span."""
    members = set(attack["accounts"])
    return [
        event
        for event in run.events
        if event["type"] == "like"
        and event["actor_id"] in members
        and attack["start"] <= event["ts"] <= attack["end"]
    ]


def test_truth_has_the_documented_top_level_fields(
    synthetic_run: LoadedScenario, seed: str
) -> None:
    truth = synthetic_run.truth
    assert truth["seed"] == int(seed)
    assert truth["end"] - truth["start"] == pytest.approx(1.5 * 3600)
    for name in ("attacks", "organic_accounts", "new_normal_accounts"):
        assert isinstance(truth[name], list)
    assert {attack["kind"] for attack in truth["attacks"]} == set(ATTACK_KINDS)
    for attack in truth["attacks"]:
        assert set(attack) == {
            "kind",
            "attack_id",
            "accounts",
            "posts",
            "authors",
            "beneficiaries",
            "start",
            "end",
            "params",
        }
    ids = [attack["attack_id"] for attack in truth["attacks"]]
    assert len(set(ids)) == len(ids)


def test_attack_accounts_act_in_the_capture_and_start_is_their_first_event(
    synthetic_run: LoadedScenario,
) -> None:
    by_actor = actions_by_actor(synthetic_run.events)
    snapshots = account_snapshots(synthetic_run.events)
    for attack in synthetic_run.truth["attacks"]:
        assert attack["accounts"], attack["attack_id"]
        assert synthetic_run.truth["start"] <= attack["start"] <= attack["end"]
        assert attack["end"] <= synthetic_run.truth["end"]
        touched: set[float] = set()
        for account in attack["accounts"]:
            assert account in snapshots, account
            touched.update(event["ts"] for event in by_actor.get(account, []))
            touched.update(event["ts"] for event in snapshots[account][1:])
        assert attack["start"] in touched, attack["attack_id"]
        inside = [ts for ts in touched if attack["start"] <= ts <= attack["end"]]
        assert inside and max(inside) == attack["end"]


def test_attack_posts_and_beneficiaries_are_visible(synthetic_run: LoadedScenario) -> None:
    posts = last_post_snapshots(synthetic_run.events)
    for attack in synthetic_run.truth["attacks"]:
        assert set(attack["posts"]) <= set(posts), attack["attack_id"]
        authors = {posts[post]["author_id"] for post in attack["posts"]}
        assert set(attack["authors"]) == authors
        assert set(attack["beneficiaries"]) <= authors | set(attack["accounts"])


def test_labels_are_disjoint_from_organic_accounts(synthetic_run: LoadedScenario) -> None:
    truth = synthetic_run.truth
    organic = set(truth["organic_accounts"])
    labelled = {
        account
        for attack in truth["attacks"]
        for account in [*attack["accounts"], *attack["beneficiaries"]]
    }
    assert not organic & labelled
    everyone = set(account_snapshots(synthetic_run.events))
    assert organic | labelled == everyone
    assert set(truth["new_normal_accounts"]) <= organic


def test_fast_burst_is_many_likes_in_minutes(synthetic_run: LoadedScenario) -> None:
    for attack in attacks_of(synthetic_run, "burst", "fast"):
        (account,) = attack["accounts"]
        likes = fake_likes(synthetic_run, attack)
        assert 50 <= len(likes) <= 300
        assert attack["end"] - attack["start"] <= 15 * 60
        assert {event["actor_id"] for event in likes} == {account}


def test_slow_burst_is_hundreds_of_likes_over_a_longer_span(synthetic_run: LoadedScenario) -> None:
    for attack in attacks_of(synthetic_run, "burst", "slow"):
        assert len(fake_likes(synthetic_run, attack)) >= 150
        assert attack["end"] - attack["start"] > 15 * 60


def test_new_accounts_were_created_minutes_before_liking(synthetic_run: LoadedScenario) -> None:
    snapshots = account_snapshots(synthetic_run.events)
    by_actor = actions_by_actor(synthetic_run.events)
    for attack in attacks_of(synthetic_run, "new_account_spike"):
        for account in attack["accounts"]:
            created = snapshots[account][0]["created_at"]
            first_like = by_actor[account][0]["ts"]
            assert 0 < first_like - created <= 60 * 60


def test_new_account_target_side_piles_onto_one_post(synthetic_run: LoadedScenario) -> None:
    for attack in attacks_of(synthetic_run, "new_account_spike", "target"):
        target = attack["params"]["target_post"]
        likers = {
            event["actor_id"]
            for event in fake_likes(synthetic_run, attack)
            if event["post_id"] == target
        }
        assert likers == set(attack["accounts"])
        assert 20 <= len(likers) <= 80
        (author,) = attack["beneficiaries"]
        assert author in attack["authors"]


def test_new_account_actor_side_likes_at_a_high_rate(synthetic_run: LoadedScenario) -> None:
    by_actor = actions_by_actor(synthetic_run.events)
    for attack in attacks_of(synthetic_run, "new_account_spike", "actor"):
        for account in attack["accounts"]:
            times = [event["ts"] for event in by_actor[account]]
            assert len(times) >= 10
            assert (times[-1] - times[0]) / (len(times) - 1) < 30


def test_bought_followers_jump_while_likes_stay_small(synthetic_run: LoadedScenario) -> None:
    snapshots = account_snapshots(synthetic_run.events)
    likes = like_counts(synthetic_run.events)
    for attack in attacks_of(synthetic_run, "fan_imbalance", "bought_followers"):
        (author,) = attack["accounts"]
        history = snapshots[author]
        assert len(history) == 2
        assert history[1]["ts"] == attack["start"]
        assert history[1]["followers"] - history[0]["followers"] >= 10_000
        assert max(likes.get(post, 0) for post in attack["posts"]) < 0.01 * history[1]["followers"]


def test_bought_likes_exceed_followers_with_low_completion(synthetic_run: LoadedScenario) -> None:
    snapshots = account_snapshots(synthetic_run.events)
    posts = last_post_snapshots(synthetic_run.events)
    likes = like_counts(synthetic_run.events)
    for attack in attacks_of(synthetic_run, "fan_imbalance", "bought_likes"):
        (post,) = attack["posts"]
        (author,) = attack["beneficiaries"]
        assert likes[post] >= 400
        assert likes[post] > snapshots[author][-1]["followers"]
        assert posts[post]["completions"] < 0.05 * posts[post]["views"]
        assert len(attack["accounts"]) == attack["params"]["likes_bought"]


def test_swarm_block_has_density_close_to_p(synthetic_run: LoadedScenario) -> None:
    for attack in attacks_of(synthetic_run, "swarm"):
        params = attack["params"]
        block = set(params["block_posts"])
        members = set(attack["accounts"])
        edges = {
            (event["actor_id"], event["post_id"])
            for event in fake_likes(synthetic_run, attack)
            if event["post_id"] in block
        }
        assert {actor for actor, _ in edges} == members
        m, n = params["m"], params["n"]
        assert (len(members), len(block)) == (m, n)
        tolerance = 4 * (params["p"] * (1 - params["p"]) / (m * n)) ** 0.5 + 1 / n
        assert abs(len(edges) / (m * n) - params["p"]) <= tolerance


def test_swarm_likes_of_each_block_post_arrive_within_minutes(
    synthetic_run: LoadedScenario,
) -> None:
    for attack in attacks_of(synthetic_run, "swarm"):
        times: dict[str, list[float]] = {}
        for event in fake_likes(synthetic_run, attack):
            if event["post_id"] in attack["params"]["block_posts"]:
                times.setdefault(event["post_id"], []).append(event["ts"])
        for post_times in times.values():
            assert max(post_times) - min(post_times) <= attack["params"]["window_s"] + 1


def test_swarm_camouflage_goes_to_organic_posts(synthetic_run: LoadedScenario) -> None:
    for attack in attacks_of(synthetic_run, "swarm"):
        block = set(attack["params"]["block_posts"])
        camouflage = [
            event for event in fake_likes(synthetic_run, attack) if event["post_id"] not in block
        ]
        assert len(camouflage) == attack["params"]["camouflage_likes"] > 0


def test_churn_accounts_cycle_like_and_unlike(synthetic_run: LoadedScenario) -> None:
    by_actor = actions_by_actor(synthetic_run.events)
    for attack in attacks_of(synthetic_run, "churn"):
        for account in attack["accounts"]:
            kinds = Counter(event["type"] for event in by_actor[account])
            assert kinds["unlike"] >= 50
            assert kinds["unlike"] >= 0.9 * kinds["like"]


def test_ring_members_like_each_others_posts(synthetic_run: LoadedScenario) -> None:
    posts = last_post_snapshots(synthetic_run.events)
    for attack in attacks_of(synthetic_run, "ring"):
        members = set(attack["accounts"])
        assert 5 <= len(members) <= 30
        assert members <= set(attack["authors"])
        liked_authors: dict[str, set[str]] = {member: set() for member in members}
        for event in fake_likes(synthetic_run, attack):
            if posts[event["post_id"]]["author_id"] in members:
                liked_authors[event["actor_id"]].add(posts[event["post_id"]]["author_id"])
        for member, authors in liked_authors.items():
            assert member not in authors
            assert len(authors) >= (len(members) - 1) / 2
