"""Online models (River) behind the detectors, and their checkpoints in Redis.

Models are population-level (one per worker, not one per account): per-account history lives
in the Redis windows, which every worker shares. A model's state is pickled into Redis every
few thousand events and on shutdown, so a restarted worker resumes with its learned baselines.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from river import stats

from detectors.state import RedisState

log = logging.getLogger(__name__)

#: Bump when a model's pickled shape changes; older checkpoints are then ignored.
CHECKPOINT_VERSION = 1


class PopulationQuantiles:
    """Streaming quantiles of per-account counts, one estimator per window resolution.

    Parameters
    ----------
    n_resolutions
        How many window lengths the counts come in.
    q
        The quantile, e.g. 0.99.

    Examples
    --------
    >>> model = PopulationQuantiles(n_resolutions=2, q=0.5)
    >>> for counts in [(1, 2), (3, 6), (5, 10)]:
    ...     model.learn_one(counts)
    >>> model.quantiles()
    [3.0, 6.0]
    """

    def __init__(self, n_resolutions: int, q: float) -> None:
        self.q = q
        self._estimators = [stats.Quantile(q) for _ in range(n_resolutions)]
        self.n_seen = 0

    def learn_one(self, counts: Sequence[int]) -> None:
        for estimator, count in zip(self._estimators, counts, strict=True):
            estimator.update(count)
        self.n_seen += 1

    def quantiles(self) -> list[float]:
        """Current estimates (0.0 before anything was learned)."""
        return [float(e.get() or 0.0) for e in self._estimators]


class ModelCheckpoints:
    """Saves and restores detectors' model state under ``{namespace}:models``."""

    def __init__(self, state: RedisState) -> None:
        self.state = state
        self.key = state.key("models")

    def save(self, models: Mapping[str, Any]) -> None:
        blobs = {
            name: pickle.dumps((CHECKPOINT_VERSION, model), protocol=pickle.HIGHEST_PROTOCOL)
            for name, model in models.items()
            if model is not None
        }
        if blobs:
            with self.state.timed("checkpoint_save"):
                self.state.client.hset(self.key, mapping=blobs)  # type: ignore[arg-type]

    def load(self) -> dict[str, Any]:
        with self.state.timed("checkpoint_load"):
            raw: dict[bytes, bytes] = self.state.client.hgetall(self.key)  # type: ignore[assignment]
        models: dict[str, Any] = {}
        for name, blob in raw.items():
            # Checkpoints are written by likeguard itself into its own namespace; Redis is a
            # trusted store here, as for every other piece of state.
            try:
                version, model = pickle.loads(blob)
            except Exception as err:  # a corrupt or foreign blob must not stop the worker
                log.warning("ignoring unreadable checkpoint for %s: %s", name.decode(), err)
                continue
            if version != CHECKPOINT_VERSION:
                log.warning("ignoring checkpoint for %s from version %s", name.decode(), version)
                continue
            models[name.decode()] = model
        return models
