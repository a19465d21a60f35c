"""Grouping of cProfile rows and py-spy stacks into the layers BENCHMARKS.md reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profiling import layer_of, stack_category, summarise_py_spy, thread_group


@pytest.mark.parametrize(
    ("filename", "function", "layer"),
    [
        ("~", "<method 'recv_into' of '_socket.socket' objects>", "Redis: waiting for replies"),
        ("/v/site-packages/redis/connection.py", "pack", "Redis: redis-py encode/parse"),
        ("/r/schemas/validate.py", "parse_event", "decode + validate"),
        ("/py/lib/json/decoder.py", "raw_decode", "decode + validate"),
        ("/v/site-packages/river/stats/quantile.py", "update", "River models"),
        ("/r/detectors/burst.py", "detect", "detectors (Python)"),
        ("/py/lib/gzip.py", "read", "reading the file (gzip)"),
        ("/r/elsewhere.py", "f", "other"),
    ],
)
def test_layer_of(filename: str, function: str, layer: str) -> None:
    assert layer_of(filename, function).startswith(layer)


def f(name: str, where: str) -> str:
    return f"{name} ({where}:1)"


@pytest.mark.parametrize(
    ("frames", "category"),
    [
        ([f("run", "threading.py"), f("select", "selectors.py")], "idle"),
        ([f("handle", "socketserver.py"), f("readinto", "socket.py")], "idle"),
        (
            [f("detect", "detectors/burst.py"), f("_read", "redis/_parsers/socket.py")],
            "Redis: waiting for replies",
        ),
        ([f("detect", "detectors/burst.py"), f("pack", "redis/connection.py")], "Redis: redis-py"),
        (
            [f("process", "detectors/pipeline.py"), f("detect", "detectors/imbalance.py")],
            "detectors: imbalance.py",
        ),
        ([f("handle", "stream/app.py"), f("parse_event", "schemas/validate.py")], "decode"),
        ([f("on_message", "faust/transport/conductor.py")], "Faust"),
        ([f("generate_latest", "prometheus_client/exposition.py")], "metrics"),
        ([], "other"),
    ],
)
def test_stack_category(frames: list[str], category: str) -> None:
    assert stack_category(frames).startswith(category)


@pytest.mark.parametrize(
    ("label", "group"),
    [
        ("thread (1): MainThread", "main: Faust event loop"),
        ("thread (2): asyncio_3", "pipeline"),
        ("thread (3): Thread-1 (serve_forever)", "Prometheus"),
        ("thread (4): Thread-9 (process_request_thread)", "Prometheus"),
        ("thread (5): Thread-4", "Faust consumer thread"),
        ("thread (6)", "other threads"),
    ],
)
def test_thread_group(label: str, group: str) -> None:
    assert thread_group(label).startswith(group)


def test_summarise_py_spy_gives_shares_of_wall_time(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    main = "thread (1): MainThread"
    pool = "thread (2): asyncio_0"
    read = f("_read", "redis/_parsers/socket.py")
    raw.write_text(
        "\n".join(
            [
                f"{main};{f('on_message', 'faust/transport/conductor.py')} 60",
                f"{main};{f('select', 'selectors.py')} 40",
                f"{pool};{f('detect', 'detectors/burst.py')};{read} 30",
                f"{pool};{f('detect', 'detectors/burst.py')} 10",
                f"{pool};{f('_worker', 'concurrent/futures/thread.py')} 60",
                "garbage line",
            ]
        )
        + "\n"
    )
    text = summarise_py_spy(raw)
    assert text.startswith("100 samples per thread")
    assert "main: Faust event loop: busy 60.0 %" in text
    assert "pipeline (asyncio.to_thread pool): busy 40.0 %" in text
    assert "Redis: waiting for replies" in text and "30.0 %" in text
    assert "idle" not in text.split("\n", 1)[1]  # idle time is not listed as an activity


def test_summarise_an_empty_profile(tmp_path: Path) -> None:
    raw = tmp_path / "empty.txt"
    raw.write_text("")
    assert summarise_py_spy(raw) == "no samples"
