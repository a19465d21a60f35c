"""Organic interaction streams: who engages with which creator, and when.

Three sources give the same shape, an :class:`InteractionStream` on the scenario clock:

* ``wikipedia`` — the JODIE Wikipedia edits (editor edits page): an edit is a like of a post in
  the page's feed, the page's author found by hashing the page onto a pool of accounts (some of
  them editors). The whole month plays in :data:`WIKIPEDIA_HOURS_PER_LAP` scenario hours.
* ``bitcoin`` — the Bitcoin OTC trust ratings: a positive rating is a like of a post of the
  rated user (so reciprocity occurs naturally). Replayed by rank, since the raw clock spans
  five very uneven years; the whole set plays in :data:`BITCOIN_HOURS_PER_LAP` hours.
* ``synthetic`` — sessions of power-law users on Zipf-popular creators; needs no data files.

``--scale`` multiplies the population: each extra pass replays another random slice of the data
with its users renamed (a fractional pass keeps that fraction of the users).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.simulate.world import SECONDS_PER_HOUR, World, stable_hash

WIKIPEDIA_FILE = "wikipedia_edits.txt"
BITCOIN_FILE = "bitcoin_otc_ratings.csv"
WIKIPEDIA_HOURS_PER_LAP = 6.0
BITCOIN_HOURS_PER_LAP = 4.0
WIKIPEDIA_AUTHOR_POOL_SHARE = 0.4
EDITOR_AUTHOR_SHARE = 0.3
SYNTHETIC_LIKES_PER_HOUR = 7000.0
SYNTHETIC_USERS = 3000
SYNTHETIC_CREATORS = 300
SYNTHETIC_CREATOR_USER_SHARE = 0.3
DATA_DIR_ENV = "LIKEGUARD_DATA_DIR"


@dataclass
class InteractionStream:
    """Organic engagements ``user -> creator`` at scenario times.

    Attributes
    ----------
    user_keys
        Descriptive account key of each user index.
    creator_keys
        Descriptive key of each creator's post series.
    creator_authors
        Account key of the author of each creator's series.
    users, creators
        Integer indices into ``user_keys`` and ``creator_keys``, one per engagement.
    ts
        Scenario epoch seconds, one per engagement.
    """

    user_keys: list[str]
    creator_keys: list[str]
    creator_authors: list[str]
    users: np.ndarray
    creators: np.ndarray
    ts: np.ndarray


def default_data_dir() -> Path:
    """Return ``$LIKEGUARD_DATA_DIR`` or ``../shared/data`` beside the repository root."""
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env)
    repo_root = Path(__file__).resolve().parents[2]
    return (repo_root.parent / "shared" / "data").resolve()


def pass_fractions(scale: float) -> list[float]:
    """Split ``scale`` into passes over the data: 2.5 -> [1.0, 1.0, 0.5]."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    count = math.ceil(scale - 1e-9)
    return [min(1.0, scale - index) for index in range(count)]


def slice_laps(
    times: np.ndarray, span: float, window: float, offset: float
) -> tuple[np.ndarray, np.ndarray]:
    """Select rows whose time, replayed from ``offset`` in a loop of length ``span``, falls in
    ``[0, window)``.

    Returns
    -------
    rows, elapsed
        Row indices into ``times`` (a row may repeat on later laps) and the time elapsed since
        ``offset`` for each.
    """
    laps = math.ceil((offset + window) / span) + 1
    rows_parts: list[np.ndarray] = []
    elapsed_parts: list[np.ndarray] = []
    for lap in range(laps):
        elapsed = times + lap * span - offset
        mask = (elapsed >= 0) & (elapsed < window)
        rows_parts.append(np.flatnonzero(mask))
        elapsed_parts.append(elapsed[mask])
    return np.concatenate(rows_parts), np.concatenate(elapsed_parts)


def _pass_suffix(pass_index: int) -> str:
    return "" if pass_index == 0 else f"#{pass_index}"


def _keys(prefix: str, ids: np.ndarray, suffix: str) -> np.ndarray:
    """String keys ``prefix + id + suffix`` for an array of integer ids."""
    return np.char.add(np.char.add(prefix, ids.astype(str)), suffix)


def _kept_users(max_user: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Return a boolean mask over user ids ``0..max_user``: which users this pass keeps."""
    return rng.random(max_user + 1) < fraction


def _index_keys(keys: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Map an array of string keys to (sorted unique keys, integer index per element)."""
    unique, inverse = np.unique(keys, return_inverse=True)
    return [str(key) for key in unique], inverse.astype(np.int64)


def load_wikipedia(path: Path) -> np.ndarray:
    """Load ``user item ts`` rows of the JODIE Wikipedia file as an ``(n, 3)`` int array."""
    rows = np.loadtxt(path, dtype=np.int64, ndmin=2)
    return rows[np.argsort(rows[:, 2], kind="stable")]


def load_bitcoin_likes(path: Path) -> np.ndarray:
    """Load positive Bitcoin OTC ratings as ``(n, 2)`` ``source, target`` rows in time order."""
    rows = np.loadtxt(path, dtype=np.int64, delimiter=",", ndmin=2)
    positive = rows[rows[:, 2] > 0]
    ordered = positive[np.argsort(positive[:, 3], kind="stable")]
    return ordered[:, :2]


def _replayed_passes(
    times: np.ndarray, span: float, hours_per_lap: float, world: World, scale: float, name: str
) -> Iterator[tuple[int, float, np.ndarray, np.ndarray]]:
    """Yield ``(pass_index, fraction, rows, scenario_ts)`` for each pass over a data set."""
    rng = world.rng(f"organic.{name}.passes")
    speedup = span / (hours_per_lap * SECONDS_PER_HOUR)
    window = (world.end - world.start) * speedup
    for pass_index, fraction in enumerate(pass_fractions(scale)):
        offset = float(rng.uniform(0.0, span))
        rows, elapsed = slice_laps(times, span, window, offset)
        yield pass_index, fraction, rows, world.start + elapsed / speedup


def wikipedia_stream(path: Path, world: World, scale: float) -> InteractionStream:
    """Build the organic stream from the Wikipedia edits (see the module docstring)."""
    data = load_wikipedia(path)
    users, items, times = data[:, 0], data[:, 1], data[:, 2].astype(np.float64)
    span = float(times.max()) + 1.0
    rng = world.rng("organic.wikipedia.users")
    user_parts: list[np.ndarray] = []
    item_parts: list[np.ndarray] = []
    ts_parts: list[np.ndarray] = []
    for pass_index, fraction, rows, ts in _replayed_passes(
        times, span, WIKIPEDIA_HOURS_PER_LAP, world, scale, "wikipedia"
    ):
        kept = _kept_users(int(users.max()), fraction, rng)[users[rows]]
        suffix = _pass_suffix(pass_index)
        user_parts.append(_keys("wiki-user:", users[rows][kept], suffix))
        item_parts.append(items[rows][kept])
        ts_parts.append(ts[kept])
    user_keys, user_index = _index_keys(np.concatenate(user_parts))
    item_values, item_index = np.unique(np.concatenate(item_parts), return_inverse=True)
    creator_keys = [f"wiki-item:{item}" for item in item_values]
    authors = _wikipedia_authors([int(item) for item in item_values], user_keys, world)
    return InteractionStream(
        user_keys,
        creator_keys,
        authors,
        user_index,
        item_index.astype(np.int64),
        np.concatenate(ts_parts),
    )


def _wikipedia_authors(items: list[int], user_keys: list[str], world: World) -> list[str]:
    """Hash every page onto a pool of author accounts, some of which are editors."""
    rng = world.rng("organic.wikipedia.authors")
    pool_size = max(10, round(WIKIPEDIA_AUTHOR_POOL_SHARE * len(items)))
    editor_slots = rng.random(pool_size) < EDITOR_AUTHOR_SHARE
    editors = rng.permutation(len(user_keys))[:pool_size]
    pool = [
        user_keys[int(editors[slot])]
        if editor_slots[slot] and slot < len(editors)
        else f"wiki-author:{slot}"
        for slot in range(pool_size)
    ]
    return [pool[stable_hash(f"{world.seed}:wiki-item:{item}") % pool_size] for item in items]


def bitcoin_stream(path: Path, world: World, scale: float) -> InteractionStream:
    """Build the organic stream from positive Bitcoin OTC ratings (see the module docstring)."""
    pairs = load_bitcoin_likes(path)
    rng = world.rng("organic.bitcoin.users")
    rank_times = np.arange(len(pairs), dtype=np.float64) + rng.random(len(pairs))
    span = float(len(pairs))
    max_user = int(pairs.max())
    source_parts: list[np.ndarray] = []
    target_parts: list[np.ndarray] = []
    ts_parts: list[np.ndarray] = []
    for pass_index, fraction, rows, ts in _replayed_passes(
        rank_times, span, BITCOIN_HOURS_PER_LAP, world, scale, "bitcoin"
    ):
        kept_users = _kept_users(max_user, fraction, rng)
        sources, targets = pairs[rows, 0], pairs[rows, 1]
        kept = kept_users[sources] & kept_users[targets]
        suffix = _pass_suffix(pass_index)
        source_parts.append(_keys("btc-user:", sources[kept], suffix))
        target_parts.append(_keys("btc-user:", targets[kept], suffix))
        ts_parts.append(ts[kept])
    user_keys, user_index = _index_keys(np.concatenate(source_parts))
    author_keys, creator_index = _index_keys(np.concatenate(target_parts))
    creator_keys = [f"btc-feed:{key}" for key in author_keys]
    return InteractionStream(
        user_keys, creator_keys, author_keys, user_index, creator_index, np.concatenate(ts_parts)
    )


def synthetic_stream(world: World, scale: float) -> InteractionStream:
    """Sessions of power-law users liking posts of Zipf-popular creators."""
    rng = world.rng("organic.synthetic")
    user_count = max(20, round(SYNTHETIC_USERS * scale))
    creator_count = max(10, round(SYNTHETIC_CREATORS * math.sqrt(scale)))
    user_keys = [f"synth-user:{index}" for index in range(user_count)]
    creator_keys = [f"synth-feed:{index}" for index in range(creator_count)]
    creator_authors = [
        user_keys[int(rng.integers(user_count))]
        if rng.random() < SYNTHETIC_CREATOR_USER_SHARE
        else f"synth-author:{index}"
        for index in range(creator_count)
    ]
    users, ts = _synthetic_sessions(world, rng, user_count, scale)
    popularity = 1.0 / np.arange(1, creator_count + 1) ** 1.1
    favourites = rng.choice(creator_count, size=(user_count, 4), p=popularity / popularity.sum())
    from_favourites = rng.random(len(users)) < 0.5
    any_creator = rng.choice(creator_count, size=len(users), p=popularity / popularity.sum())
    favourite_pick = favourites[users, rng.integers(0, 4, size=len(users))]
    creators = np.where(from_favourites, favourite_pick, any_creator).astype(np.int64)
    return InteractionStream(user_keys, creator_keys, creator_authors, users, creators, ts)


def _synthetic_sessions(
    world: World, rng: np.random.Generator, user_count: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw sessions (start, length, in-session gaps) for Pareto-active users."""
    duration = world.end - world.start
    target_likes = SYNTHETIC_LIKES_PER_HOUR * scale * duration / SECONDS_PER_HOUR
    mean_session = 6.0
    activity = rng.pareto(1.6, size=user_count) + 0.05
    session_count = max(1, round(target_likes / mean_session))
    session_user = rng.choice(user_count, size=session_count, p=activity / activity.sum())
    phase = rng.uniform(0, 2 * math.pi)
    candidate = rng.uniform(0.0, duration, size=session_count * 2)
    diurnal = 1.0 + 0.4 * np.sin(2 * math.pi * candidate / 86_400.0 + phase)
    accepted = candidate[rng.random(len(candidate)) * 1.4 < diurnal][:session_count]
    session_user = session_user[: len(accepted)]
    lengths = rng.geometric(1.0 / mean_session, size=len(accepted))
    users = np.repeat(session_user, lengths)
    starts = np.repeat(world.start + accepted, lengths)
    gaps = rng.lognormal(math.log(15.0), 0.8, size=len(users))
    session_first = np.r_[0, np.cumsum(lengths)[:-1]]
    gaps[session_first] = 0.0
    cumulative = np.cumsum(gaps)
    offsets = cumulative - np.repeat(cumulative[session_first], lengths)
    return users.astype(np.int64), starts + offsets


def load_stream(
    mode: str, world: World, scale: float, data_dir: Path | None = None
) -> InteractionStream:
    """Return the organic stream for ``mode`` (``wikipedia``, ``bitcoin`` or ``synthetic``).

    Raises
    ------
    FileNotFoundError
        When the data file a mode needs is missing.
    ValueError
        For an unknown mode.
    """
    folder = data_dir if data_dir is not None else default_data_dir()
    if mode == "synthetic":
        return synthetic_stream(world, scale)
    if mode == "wikipedia":
        return wikipedia_stream(_existing(folder / WIKIPEDIA_FILE), world, scale)
    if mode == "bitcoin":
        return bitcoin_stream(_existing(folder / BITCOIN_FILE), world, scale)
    raise ValueError(f"unknown organic mode {mode!r}")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"organic data file {path} not found (set --data-dir or ${DATA_DIR_ENV}, "
            "or use --organic synthetic)"
        )
    return path
