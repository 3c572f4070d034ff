"""Every router is built by `backline.routing.router`, so every JSON route gets its checks."""

from __future__ import annotations

import re
from pathlib import Path

import backline

SOURCE = Path(backline.__file__).parent


def test_routers_are_only_made_by_the_factory() -> None:
    offenders = [
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if path.name != "routing.py" and re.search(r"\bAPIRouter\(", path.read_text())
    ]
    assert offenders == []
