"""Which byte range a `Range` header asks for: one range served, anything else ignored, and
nothing the object has refused with 416."""

from __future__ import annotations

import pytest

from backline.storage.delivery import RangeNotSatisfiable, requested_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-50", (950, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=999-999", (999, 999)),
        ("BYTES=0-0", (0, 0)),
        (" bytes=1-2 ", (1, 2)),
        # ignored: the whole object
        ("bytes=0-1,5-6", None),
        ("bytes=0-1, 5-6", None),
        ("bytes=5-2", None),
        ("bytes=-", None),
        ("bytes=abc", None),
        ("bytes 0-1", None),
        ("items=0-1", None),
        ("bytes=0-99999999999999999999999", None),
        ("", None),
    ],
)
def test_one_range_is_read_and_anything_else_ignored(
    header: str, span: tuple[int, int] | None
) -> None:
    assert requested_range(header, SIZE) == span


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", SIZE),
        ("bytes=-0", SIZE),
        ("bytes=1000-2000", SIZE),
        ("bytes=0-", 0),
        ("bytes=-1", 0),
    ],
)
def test_a_range_outside_the_object_is_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as refused:
        requested_range(header, size)
    assert refused.value.status == 416
    assert refused.value.headers == {"Content-Range": f"bytes */{size}"}
