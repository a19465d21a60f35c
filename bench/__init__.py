"""``make bench``: throughput, latency and memory of likeguard, measured on the dev stack.

Modules: :mod:`bench.cli` (the command and its table), :mod:`bench.live` (worker and bare
Faust agent throughput), :mod:`bench.bare_agent` (the baseline agent), :mod:`bench.replay`,
:mod:`bench.latency`, :mod:`bench.memory`, :mod:`bench.stack` (names, processes, clean-up),
:mod:`bench.stats` and :mod:`bench.report` (pure helpers), :mod:`bench.machine`.
"""
