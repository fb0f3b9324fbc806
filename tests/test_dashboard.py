"""cluster/grafana-dashboard.json against the metrics the code registers (ray.serve.metrics in
deployments/): every metric has a panel, every series a panel queries is one Ray exports."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = json.loads((ROOT / "cluster" / "grafana-dashboard.json").read_text(encoding="utf-8"))
KINDS = {"Counter", "Gauge", "Histogram"}
METRIC_MODULES = {"ray.serve.metrics", "ray.util.metrics"}
PREFIX = "ray_"  # Ray's Prometheus namespace for application metrics (ray/_private/metrics_agent.py)
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}


def registered_metrics() -> dict[str, str]:
    """{name: kind} of every Counter, Gauge and Histogram that deployments/ creates from Ray's metrics
    modules, read from the source (no replica needs to start)."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "deployments").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            alias.asname or alias.name: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module in METRIC_MODULES
            for alias in node.names
            if alias.name in KINDS
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
                given = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "name")
                assert isinstance(given, ast.Constant), f"{path}:{node.lineno}: a metric's name must be a literal"
                assert given.value not in found, f"{given.value} registered twice"
                found[given.value] = names[node.func.id]
    return found


def exported_series(name: str, kind: str) -> set[str]:
    """The Prometheus series Ray exports for one metric: the ray_ prefix; a counter named ..._total
    keeps its name, any other gets _total; a histogram is _bucket, _sum and _count."""
    full = PREFIX + name
    if kind == "Histogram":
        return {f"{full}_bucket", f"{full}_sum", f"{full}_count"}
    if kind == "Counter":
        return {full if full.endswith("_total") else f"{full}_total"}
    return {full}


def targets() -> list[tuple[dict, str]]:
    return [(panel, target["expr"]) for panel in DASHBOARD["panels"] for target in panel.get("targets", [])]


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, keywords,
    label names (inside {} or by/without (...)), strings or Grafana variables."""
    text = re.sub(r'"[^"]*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(match.group())
    return names


METRICS = registered_metrics()
EXPORTED = {series: name for name, kind in METRICS.items() for series in exported_series(name, kind)}


def test_the_code_registers_metrics():
    assert len(METRICS) >= 5  # parsing found them (the README lists them)
    assert {"Histogram", "Counter"} <= set(METRICS.values())


def test_no_metric_is_a_gauge():
    """Ray exports a gauge only for a while after it is set, so a panel of one is empty most of the time
    (the speaker cache's hit rate was). Ratios are two counters, divided in PromQL over rates."""
    assert {name: kind for name, kind in METRICS.items() if kind == "Gauge"} == {}
    ratio = [expr for _, expr in targets() if "ray_zonos_speaker_cache_hits_total" in expr]
    assert len(ratio) == 1 and re.fullmatch(
        r"sum by \(replica\) \(rate\(ray_zonos_speaker_cache_hits_total\{[^}]*\}\[\$__rate_interval\]\)\) / "
        r"sum by \(replica\) \(rate\(ray_zonos_speaker_cache_lookups_total\{[^}]*\}\[\$__rate_interval\]\)\)",
        ratio[0],
    ), ratio


def test_every_metric_has_a_panel_and_every_query_an_exported_metric():
    queried = {name for _, expr in targets() for name in series_in(expr)}
    assert queried <= set(EXPORTED), f"queried but not exported: {sorted(queried - set(EXPORTED))}"
    shown = {EXPORTED[series] for series in queried}
    assert shown == set(METRICS), f"metrics without a panel: {sorted(set(METRICS) - shown)}"


def test_each_kind_is_queried_as_its_kind():
    """Quantiles from histogram buckets; counters through rate or increase; a gauge never in a rate."""
    for panel, expr in targets():
        for series in series_in(expr):
            kind = METRICS[EXPORTED[series]]
            if series.endswith("_bucket"):
                assert "histogram_quantile(" in expr, (panel["title"], expr)
            if kind in ("Counter", "Histogram"):
                assert re.search(rf"(rate|increase)\(\s*{series}\b", expr), (panel["title"], expr)
            if kind == "Gauge":
                assert not re.search(rf"(rate|increase)\(\s*{series}\b", expr), (panel["title"], expr)
    for name, kind in METRICS.items():
        if kind == "Histogram":
            assert any(f"{PREFIX}{name}_bucket" in expr for _, expr in targets()), f"{name}: no quantile panel"


def test_the_naming_rule_is_prometheus_clients():
    """Both of Ray's exporters hand their families to prometheus_client: its exposition names them
    as exported_series says."""
    families = {
        "Counter": lambda n: CounterMetricFamily(n, "d", labels=["l"]),
        "Gauge": lambda n: GaugeMetricFamily(n, "d", labels=["l"]),
        "Histogram": lambda n: HistogramMetricFamily(n, "d", labels=["l"]),
    }
    for name, kind in METRICS.items():
        family = families[kind](PREFIX + name)
        if kind == "Histogram":
            family.add_metric(["x"], buckets=[("1", 1), ("+Inf", 2)], sum_value=1.5)
        else:
            family.add_metric(["x"], 1)
        registry = CollectorRegistry()
        registry.register(type("One", (), {"collect": lambda self, f=family: [f]})())
        lines = generate_latest(registry).decode().splitlines()
        samples = {line.split("{")[0] for line in lines if not line.startswith("#")}
        assert samples - {f"{PREFIX}{name}_created"} == exported_series(name, kind), (name, samples)


def test_the_dashboard_is_well_formed():
    panels = DASHBOARD["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
    assert "datasource" in variables
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"]
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
    for panel, expr in targets():
        assert set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval", "__interval", "__range"} <= variables, expr
        for opening, closing in ("()", "{}", "[]"):
            depth = 0
            for char in expr:
                depth += (char == opening) - (char == closing)
                assert depth >= 0, expr
            assert depth == 0, (panel["title"], expr)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=~"$v"}[$__rate_interval])))', {"a_bucket"}),
        ("sum(rate(a_sum[5m])) / sum(rate(a_count[5m])) * 512", {"a_sum", "a_count"}),
        ('max by (replica) (g{application=~"$application"})', {"g"}),
    ],
)
def test_series_in_finds_the_metric_names(expr, expected):
    assert series_in(expr) == expected
