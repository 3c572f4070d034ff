"""What a route or a dependency can answer besides success: `@raises(NotFound, ...)`.

A route function, or a dependency it uses, is marked with the problems it raises, as
`ProblemError` classes (their status and code) or `(status, code)` pairs for a code of its own:

    @tracks_router.get("/{track_id}/audio-url")
    @raises(NotFound, (404, "no_audio"))
    async def audio_url(...): ...

The document builder collects the marks of a route and of every dependency it resolves, so a
check added in a dependency is documented on every route that uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from fastapi.dependencies.models import Dependant

from backline.errors import ProblemError

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__backline_problems__"


@dataclass(frozen=True, order=True)
class Problem:
    status: int
    code: str
    methods: frozenset[str] = frozenset()  # answered only to these methods; empty: to any

    def answers(self, method: str) -> bool:
        return not self.methods or method.upper() in self.methods


ProblemSource = type[ProblemError] | tuple[int, str] | Problem


def problem(source: ProblemSource) -> Problem:
    if isinstance(source, Problem):
        return source
    if isinstance(source, tuple):
        return Problem(*source)
    return Problem(source.status, source.code)


def raises(*sources: ProblemSource, methods: Iterable[str] = ()) -> Callable[[F], F]:
    """Mark a route or dependency function with the problems it can answer (to `methods`
    only, when given)."""
    only = frozenset(methods)
    found = frozenset(replace(problem(source), methods=only) for source in sources)

    def mark(function: F) -> F:
        setattr(function, _MARK, getattr(function, _MARK, frozenset()) | found)
        return function

    return mark


def marked(function: Any) -> frozenset[Problem]:
    marks: frozenset[Problem] = getattr(function, _MARK, frozenset())
    return marks


def calls(dependant: Dependant) -> Iterator[Any]:
    """The function of a dependant and of every dependency under it."""
    yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def declared(dependant: Dependant) -> frozenset[Problem]:
    found: frozenset[Problem] = frozenset()
    for call in calls(dependant):
        found |= marked(call)
    return found
