"""`python -m backline.apidoc [FILE]`: write the OpenAPI document (`make openapi` keeps
docs/openapi.json current; a test fails when it is stale)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def document() -> dict[str, Any]:
    """The document of the routes every deployment serves (no development-only ones)."""
    from backline.app import create_app
    from backline.config import Settings

    app = create_app(Settings(env="test", dev_mailbox=False), configure_logs=False)
    return app.openapi()


def main(argv: list[str]) -> None:
    text = json.dumps(document(), indent=2, ensure_ascii=False) + "\n"
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
