"""Reading the metrics in tests: this process's registry, and a scrape's exposition text."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]


def sample(name: str, **labels: str) -> float:
    """A sample of this process's registry; 0 where it has none yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def samples(text: str) -> dict[Key, float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample of an exposition, None where it is absent."""
    return samples(text).get((name, tuple(sorted(labels.items()))))


def label_values(text: str, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (found, labels), _ in samples(text).items() if found == name}
