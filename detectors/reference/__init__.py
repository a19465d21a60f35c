"""Reference methods the evaluator compares likeguard against.

Both are batch methods over a whole capture of like/unlike events (contract format of
``DESIGN.md``, ``ts`` already in epoch seconds) and pure logic: no Kafka, no Redis.

* :func:`run_fraudar`: FRAUDAR dense-block detection (Hooi et al., KDD 2016) on the net-like
  account x post graph.
* :func:`run_threshold`: a fixed like-count-per-window rate rule.

Each returns a result with ``flagged`` (account ids), ``scores`` and ``first_detection``
(event time at which the account is first flagged), see :class:`ReferenceResult`.

Examples
--------
>>> from detectors import reference
>>> events = [{"type": "like", "actor_id": "a", "post_id": f"p{i}", "ts": float(i)}
...           for i in range(40)]
>>> reference.run_threshold(events).first_detection
{'a': 29.0}

"""

from detectors.reference._common import LikeRecord, ReferenceResult, like_records
from detectors.reference.fraudar import (
    Block,
    FraudarResult,
    NetLikes,
    Peel,
    column_weights,
    dense_blocks,
    greedy_peel,
    net_likes,
    run_fraudar,
)
from detectors.reference.threshold import ThresholdHit, ThresholdResult, run_threshold

__all__ = [
    "Block",
    "FraudarResult",
    "LikeRecord",
    "NetLikes",
    "Peel",
    "ReferenceResult",
    "ThresholdHit",
    "ThresholdResult",
    "column_weights",
    "dense_blocks",
    "greedy_peel",
    "like_records",
    "net_likes",
    "run_fraudar",
    "run_threshold",
]
