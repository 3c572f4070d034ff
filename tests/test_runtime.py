"""The process is tuned for serving once its application has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from asgi_lifespan import LifespanManager

from backline import runtime
from backline.app import create_app
from backline.config import Settings


@pytest.fixture
def untuned(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runtime, "_tuned", False)
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)


def test_start_up_objects_are_frozen_and_the_youngest_generation_raised(untuned: None) -> None:
    gc.set_threshold(700, 10, 10)
    assert runtime.tune_for_serving()
    assert gc.get_freeze_count() > 10_000  # the modules and objects loaded so far
    assert gc.get_threshold() == (runtime.YOUNGEST_GENERATION, 10, 10)
    assert not runtime.tune_for_serving()  # once per process


async def test_an_application_tunes_its_process_when_it_starts(
    untuned: None, database_url: str
) -> None:
    gc.set_threshold(700, 10, 10)
    app = create_app(Settings(env="test", database_url=database_url), configure_logs=False)
    async with LifespanManager(app):
        assert gc.get_threshold()[0] == runtime.YOUNGEST_GENERATION
