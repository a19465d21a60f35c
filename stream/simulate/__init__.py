"""Labelled scenario generator: organic traffic from real interaction data plus injected
fake-engagement attacks, written as a capture file and a ground-truth file.

``likeguard simulate --out DIR [--seed N] [--hours H] [--start ISO|EPOCH]
[--organic wikipedia|bitcoin|synthetic] [--data-dir PATH] [--attacks KINDS|all|none]
[--scale F]`` writes:

``DIR/capture.jsonl.gz``
    Contract events (see DESIGN.md) sorted by ``ts``, ids ``e-<seed>-<n>``: ``like`` and
    ``unlike`` (with ``actor_created_at``, ``device_id``, and ``dwell_ms`` on likes), an
    ``account`` snapshot for every account at or before its first appearance (and again when
    its followers change), and ``post`` snapshots (``views``, ``completions``) when a post is
    first seen and at each hour boundary after an hour in which it got likes.
``DIR/truth.json``
    ``seed``, ``start``, ``end``, ``hours``, ``organic``, ``scale``, ``attacks`` (each with
    ``kind``, ``attack_id``, ``accounts`` — the fraudulent accounts —, ``posts``, ``authors``,
    ``beneficiaries``, ``start``/``end`` — event times of its first and last fake event —, and
    ``params``, which always hold the ``variant``), ``organic_accounts`` (every account in the
    capture that is neither an attack account nor a beneficiary), ``new_normal_accounts``
    (organic accounts created during the scenario), and ``counts``.

The same seed and arguments give byte-identical files. Modules: :mod:`.sources` (organic
data sets), :mod:`.organic` (likes, unlikes, profiles), :mod:`.attacks` (the six attack
kinds), :mod:`.scenario` (events, truth, writing), :mod:`.checks` (reading back, validating),
:mod:`.cli` (the command).
"""

from stream.simulate.attacks import ATTACK_KINDS
from stream.simulate.scenario import Scenario, ScenarioConfig, generate, summary, write

__all__ = ["ATTACK_KINDS", "Scenario", "ScenarioConfig", "generate", "summary", "write"]
