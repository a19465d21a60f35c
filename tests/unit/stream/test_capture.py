from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from stream.capture import Placed, Reject, merge_by_event_time, read_capture


def like(n: int, ts: float, actor: str = "a") -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "type": "like",
        "actor_id": actor,
        "post_id": f"p{n}",
        "author_id": "u",
        "ts": ts,
    }


def write_lines(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_reads_plain_gzip_and_kcat_envelopes(tmp_path: Path) -> None:
    plain = write_lines(tmp_path / "a.jsonl", [json.dumps(like(1, 1793491200)).encode()])
    gz = write_lines(tmp_path / "b.jsonl.gz", [json.dumps(like(2, 1793491201)).encode()])
    envelope = {
        "topic": "likes",
        "partition": 0,
        "offset": 7,
        "ts": 1,
        "key": "a",
        "payload": json.dumps(like(3, 1793491202)),
    }
    kcat = write_lines(tmp_path / "c.json", [json.dumps(envelope).encode()])
    ids = [
        item.event.event_id
        for p in (plain, gz, kcat)
        for item in read_capture(p)
        if isinstance(item, Placed)
    ]
    assert ids == ["e1", "e2", "e3"]
    (item,) = list(read_capture(kcat))
    assert isinstance(item, Placed) and json.loads(item.payload)["event_id"] == "e3"


def test_bad_lines_become_rejects_with_exact_bytes(tmp_path: Path) -> None:
    bad_utf8 = b'{"event_id": "\xff"}'
    path = write_lines(
        tmp_path / "x.jsonl",
        [
            json.dumps(like(1, 1793491200)).encode(),
            b"",
            b"not json",
            bad_utf8,
            b"[1]",
            json.dumps({"topic": "t", "offset": 1, "payload": None}).encode(),
        ],
    )
    items = list(read_capture(path))
    rejects = [i for i in items if isinstance(i, Reject)]
    assert [(r.line, r.reason) for r in rejects] == [
        (3, "invalid_json"),
        (4, "not_utf8"),
        (5, "not_object"),
        (6, "missing_field"),
    ]
    record = json.loads(rejects[1].to_json())
    assert "raw" not in record
    import base64

    assert base64.b64decode(record["raw_base64"]) == bad_utf8


def test_merge_orders_by_event_time_across_and_within_files(tmp_path: Path) -> None:
    first = write_lines(
        tmp_path / "1.jsonl",
        [json.dumps(like(n, ts)).encode() for n, ts in [(1, 10.0), (2, 30.0), (3, 20.0)]],
    )
    second = write_lines(
        tmp_path / "2.jsonl", [json.dumps(like(n, ts)).encode() for n, ts in [(4, 15.0), (5, 30.0)]]
    )
    # timestamps must be plausible epoch seconds
    for path in (first, second):
        text = path.read_text().replace('"ts": ', '"ts": 17934912')
        path.write_text(text)
    merged = [
        i for i in merge_by_event_time([first, second], reorder_buffer=10) if isinstance(i, Placed)
    ]
    assert [p.event.event_id for p in merged] == ["e1", "e4", "e3", "e2", "e5"]
