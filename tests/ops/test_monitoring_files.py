"""The Grafana dashboard and the Prometheus alert rules in `ops/`: each parses, each query is
valid PromQL, and every metric a query names is one the app exports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from backline.app import Backline
from backline.config import Settings

OPS = Path(__file__).resolve().parents[2] / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "backline.json"
TOKEN = "scraper-token-0123456789-abcdef"
# Grafana's own variables, given a value of the kind each stands for before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (raises on PromQL that does not parse)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_queries() -> Iterator[tuple[str, str]]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(json.loads(DASHBOARD.read_text())["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, stand_in in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, stand_in)
            yield panel["title"], expr


def test_alert_rules_are_complete_and_cover_what_pages() -> None:
    rules = alert_rules()
    named: set[str] = set()
    for rule in rules:
        assert rule["alert"].startswith("Backline")
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
        assert rule["for"]
        found = metric_names(rule["expr"])
        assert found, rule["alert"]
        named |= found
    assert len({rule["alert"] for rule in rules}) == len(rules)
    assert {
        "backline_outbox_oldest_waiting_age_seconds",
        "backline_http_requests_total",
        "backline_ratelimit_degraded",
        "backline_upload_verifications_waiting",
    } <= named
    five_xx = next(rule for rule in rules if rule["alert"] == "BacklineHigh5xxRatio")
    assert 'status=~"5.."' in five_xx["expr"]


def test_the_dashboard_parses_and_every_panel_queries_something() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "backline"
    queries = list(dashboard_queries())
    assert queries
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for title, expr in queries:
        assert metric_names(expr), title


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, metrics_token=TOKEN)


async def exported(client: httpx.AsyncClient) -> set[str]:
    """Every sample name a scrape can carry: each family's, with its type's suffixes (a
    labelled family nothing has happened to yet has its HELP and TYPE lines, no samples)."""
    await client.get("/healthz")  # some traffic first
    await client.post("/api/auth/login", json={"email": "a@example.com", "password": "x" * 12})
    text = (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


async def test_every_metric_the_alerts_and_dashboard_name_is_exported(
    app: Backline, client: httpx.AsyncClient
) -> None:
    names = await exported(client)
    assert "backline_outbox_messages" in names  # the database's series are there too
    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    used |= {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    assert used - names == set()
