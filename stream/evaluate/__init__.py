"""``likeguard eval``: measure the detectors against labelled scenarios (issue 3).

* :mod:`stream.evaluate.metrics`: pure scoring of flags against ``truth.json``.
* :mod:`stream.evaluate.report`: tables, ``report.json``/``report.md`` and the chart.
* :mod:`stream.evaluate.cli`: the command (replay, references, scoring, targets).
"""
