"""Table tests of the engine's pure HTTP decisions (pip's resume rules)."""

from __future__ import annotations

import pytest

from pip_91n.downloads.resume import Verdict, judge, parse_content_range, range_headers


@pytest.mark.parametrize(
    ("start", "end", "size", "validator", "expected"),
    [
        (0, None, None, None, {}),
        (0, 100, 100, '"e"', {}),  # the whole file: no Range
        (10, None, None, '"e"', {"Range": "bytes=10-", "If-Range": '"e"'}),
        (10, 100, 100, None, {"Range": "bytes=10-"}),
        (0, 50, 100, '"e"', {"Range": "bytes=0-49"}),  # no If-Range from byte 0
        (50, 60, 100, "Tue, 01 Jan 2030 00:00:00 GMT",
         {"Range": "bytes=50-59", "If-Range": "Tue, 01 Jan 2030 00:00:00 GMT"}),
    ],
)
def test_range_headers(start: int, end: int | None, size: int | None, validator: str | None,
                       expected: dict[str, str]) -> None:
    assert range_headers(start, end, size, validator) == expected


@pytest.mark.parametrize(
    ("status", "headers", "start", "size", "probing", "expected"),
    [
        (200, {"content-length": "100"}, 0, None, False, Verdict("accept", 100)),
        (200, {}, 0, None, False, Verdict("accept", None)),  # no Content-Length
        (206, {"content-range": "bytes 10-99/100"}, 10, 100, False, Verdict("accept", 100)),
        (206, {"content-range": "bytes 10-99/*"}, 10, None, False, Verdict("accept", None)),
        (200, {"content-length": "100"}, 10, 100, False, Verdict("restart", 100)),
        (206, {"content-range": "bytes 0-99/100"}, 10, 100, False,
         Verdict("fail", reason="Content-Range starts at 0, asked for 10", fatal=True)),
        (206, {}, 10, 100, False,
         Verdict("fail", reason="206 without a valid Content-Range", fatal=True)),
        (206, {"content-range": "bytes 10-99/101"}, 10, 100, False,
         Verdict("fail", reason="serves 101 bytes, expected 100", fatal=True)),
        (200, {"content-length": "7"}, 0, 100, False,
         Verdict("fail", reason="serves 7 bytes, expected 100", fatal=True)),
        (416, {}, 100, None, True, Verdict("eof")),
        (416, {}, 100, 100, False, Verdict("fail", reason="HTTP 416", fatal=False)),
        (503, {}, 0, None, False, Verdict("fail", reason="HTTP 503", fatal=False)),
        (404, {}, 0, None, False, Verdict("fail", reason="HTTP 404", fatal=True)),
    ],
)
def test_judge(status: int, headers: dict[str, str], start: int, size: int | None,
               probing: bool, expected: Verdict) -> None:
    assert judge(status, headers, start=start, size=size, probing=probing) == expected


def test_parse_content_range() -> None:
    assert parse_content_range("bytes 0-9/10") == (0, 9, 10)
    assert parse_content_range("BYTES 5-9/*") == (5, 9, None)
    assert parse_content_range("bytes */10") is None
    assert parse_content_range(None) is None
