from __future__ import annotations

import re
import statistics
import time

import pytest

from pricing import TokenCounts
from proxy.admin.metrics import CONTENT_TYPE, Metrics

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], str]

_SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


def _parse_labels(text: str) -> Labels:
    labels: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        assert match is not None, f"bad label at {text[pos:]!r}"
        labels.append((match[1], _unescape(match[2])))
        pos = match.end()
        if pos < len(text):
            assert text[pos] == ",", f"expected ',' at {text[pos:]!r}"
            pos += 1
    return tuple(sorted(labels))


def parse(body: bytes) -> Samples:
    """A strict reader of the text format: every sample belongs to the family whose HELP and TYPE precede it."""
    text = body.decode()
    assert text.endswith("\n")
    samples: Samples = {}
    helped: set[str] = set()
    types: dict[str, str] = {}
    current = ""
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            current = line.split(" ")[2]
            assert current not in helped, f"second HELP for {current}"
            helped.add(current)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and name not in types and kind in {"counter", "gauge", "histogram"}
            types[name] = kind
        else:
            match = _SAMPLE.fullmatch(line)
            assert match is not None, f"bad sample line {line!r}"
            name = match["name"]
            if types.get(current) == "histogram":
                assert name.endswith(_HISTOGRAM_SUFFIXES) and name.rsplit("_", 1)[0] == current, line
            else:
                assert name == current, f"{name} outside its family"
            float(match["value"])
            key = (name, _parse_labels(match["labels"] or ""))
            assert key not in samples, f"duplicate sample {line!r}"
            samples[key] = match["value"]
    assert helped == set(types)
    return samples


def value(samples: Samples, name: str, **labels: str) -> str:
    return samples[(name, tuple(sorted(labels.items())))]


def observe(metrics: Metrics, **overrides: object) -> None:
    args: dict[str, object] = {
        "endpoint": "/v1/chat/completions",
        "provider": "openai",
        "model": "gpt-4o",
        "status": 200,
        "user": "alice",
        "latency_s": 0.3,
        "ttfb_s": 0.08,
        "tokens": TokenCounts(input=100, cached_input=40, output=20),
        "cost_pico": 1_000_000,
        "usage_source": "reported",
    }
    args.update(overrides)
    metrics.observe_request(**args)  # type: ignore[arg-type]


CHAT = {"endpoint": "/v1/chat/completions", "provider": "openai", "model": "gpt-4o"}


def test_every_metric_parses_with_help_and_type() -> None:
    metrics = Metrics()
    observe(metrics)
    metrics.observe_refusal(scope="user", code="spend_limit_exceeded")
    metrics.observe_batch(rows=3, seconds=0.02, ok=True)
    names = {name for name, _ in parse(metrics.render())}
    assert {
        "tollgate_requests_total",
        "tollgate_upstream_ttfb_seconds_bucket",
        "tollgate_recorder_queue_depth",
    } <= names
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_requests_add_up_by_status() -> None:
    metrics = Metrics()
    for status in (200, 200, 200, 429):
        observe(metrics, status=status)
    samples = parse(metrics.render())
    assert value(samples, "tollgate_requests_total", **CHAT, status="200") == "3"
    assert value(samples, "tollgate_requests_total", **CHAT, status="429") == "1"
    assert value(samples, "tollgate_usage_source_total", source="reported") == "4"


def test_tokens_add_up_by_kind_and_zero_kinds_are_absent() -> None:
    metrics = Metrics()
    observe(metrics)
    observe(metrics, tokens=TokenCounts(input=5, output=1, reasoning=1, cache_write=2, cache_write_1h=3))
    samples = parse(metrics.render())
    assert value(samples, "tollgate_tokens_total", **CHAT, kind="input") == "105"
    assert value(samples, "tollgate_tokens_total", **CHAT, kind="output") == "21"
    assert value(samples, "tollgate_tokens_total", **CHAT, kind="cache_write") == "5"
    assert ("tollgate_tokens_total", tuple(sorted({**CHAT, "kind": "audio_input"}.items()))) not in samples


def test_histogram_buckets_are_cumulative_with_count_and_sum() -> None:
    metrics = Metrics()
    for latency in (0.003, 0.3, 0.3, 7.0, 500.0):
        observe(metrics, latency_s=latency)
    samples = parse(metrics.render())
    route = {"endpoint": "/v1/chat/completions", "provider": "openai"}
    assert value(samples, "tollgate_upstream_latency_seconds_bucket", **route, le="0.005") == "1"
    assert value(samples, "tollgate_upstream_latency_seconds_bucket", **route, le="0.5") == "3"
    assert value(samples, "tollgate_upstream_latency_seconds_bucket", **route, le="10.0") == "4"
    assert value(samples, "tollgate_upstream_latency_seconds_bucket", **route, le="+Inf") == "5"
    assert value(samples, "tollgate_upstream_latency_seconds_count", **route) == "5"
    assert float(value(samples, "tollgate_upstream_latency_seconds_sum", **route)) == pytest.approx(507.603)


def test_a_value_on_a_bound_is_in_that_bucket() -> None:
    metrics = Metrics()
    observe(metrics, ttfb_s=0.25)
    samples = parse(metrics.render())
    route = {"endpoint": "/v1/chat/completions", "provider": "openai"}
    assert value(samples, "tollgate_upstream_ttfb_seconds_bucket", **route, le="0.1") == "0"
    assert value(samples, "tollgate_upstream_ttfb_seconds_bucket", **route, le="0.25") == "1"


def test_requests_without_ttfb_are_not_in_the_ttfb_histogram() -> None:
    metrics = Metrics()
    observe(metrics, ttfb_s=None)
    samples = parse(metrics.render())
    assert not any(name.startswith("tollgate_upstream_ttfb_seconds") for name, _ in samples)


def test_a_million_observed_requests_cost_exactly_their_sum() -> None:
    metrics = Metrics()
    tokens = TokenCounts(input=1)
    for _ in range(1_000_000):
        metrics.observe_request(
            endpoint="/v1/embeddings",
            provider="openai",
            model="gpt-4o",
            status=200,
            user=None,
            latency_s=0.01,
            ttfb_s=None,
            tokens=tokens,
            cost_pico=150_000,
            usage_source="reported",
        )
    samples = parse(metrics.render())
    assert value(samples, "tollgate_cost_usd_total", provider="openai", model="gpt-4o") == "0.15"


@pytest.mark.parametrize(
    ("pico", "rendered"),
    [(1, "0.000000000001"), (10**12, "1"), (12_500_000_000_000, "12.5"), (10**24 + 3, "1000000000000.000000000003")],
)
def test_cost_renders_as_an_exact_decimal(pico: int, rendered: str) -> None:
    metrics = Metrics()
    observe(metrics, cost_pico=pico)
    samples = parse(metrics.render())
    assert value(samples, "tollgate_cost_usd_total", provider="openai", model="gpt-4o") == rendered


def test_usage_without_a_price_counts_as_unpriced() -> None:
    metrics = Metrics()
    observe(metrics, model="mystery", cost_pico=None)
    observe(metrics, model="mystery", tokens=None, cost_pico=None)
    samples = parse(metrics.render())
    assert value(samples, "tollgate_unpriced_requests_total", model="mystery") == "1"
    assert not any(name == "tollgate_cost_usd_total" for name, _ in samples)


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    observe(metrics, model='a\\b"c\nd')
    body = metrics.render()
    assert b'model="a\\\\b\\"c\\nd"' in body
    assert value(parse(body), "tollgate_cost_usd_total", provider="openai", model='a\\b"c\nd') == "0.000001"


def test_missing_label_values_render_empty() -> None:
    metrics = Metrics()
    observe(metrics, provider=None, model=None, status=404, tokens=None, ttfb_s=None, usage_source="none")
    samples = parse(metrics.render())
    labels = {"endpoint": "/v1/chat/completions", "provider": "", "model": "", "status": "404"}
    assert value(samples, "tollgate_requests_total", **labels) == "1"


def test_user_is_not_a_label_by_default() -> None:
    metrics = Metrics()
    observe(metrics, user="alice")
    assert b"alice" not in metrics.render()
    assert b"user=" not in metrics.render()


def test_user_labels_can_be_enabled() -> None:
    metrics = Metrics(user_labels=True)
    observe(metrics, user="alice")
    samples = parse(metrics.render())
    assert value(samples, "tollgate_requests_total", **CHAT, status="200", user="alice") == "1"
    assert value(samples, "tollgate_tokens_total", **CHAT, kind="output", user="alice") == "20"
    assert value(samples, "tollgate_cost_usd_total", provider="openai", model="gpt-4o", user="alice") == "0.000001"


def test_label_sets_past_the_cap_fold_into_other() -> None:
    metrics = Metrics(max_label_sets=3)
    for model in ("m1", "m2", "m3", "m4", "m5", "m4"):
        observe(metrics, model=model, tokens=None)
    samples = parse(metrics.render())
    other = {"endpoint": "other", "provider": "openai", "model": "other", "status": "200"}
    assert value(samples, "tollgate_requests_total", **other) == "3"
    kept = {**CHAT, "model": "m3", "status": "200"}
    assert value(samples, "tollgate_requests_total", **kept) == "1"
    assert ("tollgate_requests_total", tuple(sorted({**kept, "model": "m4"}.items()))) not in samples
    assert value(samples, "tollgate_metrics_label_overflow_total", metric="tollgate_requests_total") == "3"


def test_refusals_are_counted_by_scope_and_code() -> None:
    metrics = Metrics()
    metrics.observe_refusal(scope="user", code="spend_limit_exceeded")
    metrics.observe_refusal(scope="user", code="spend_limit_exceeded")
    metrics.observe_refusal(scope="global", code="limits_unavailable")
    samples = parse(metrics.render())
    assert value(samples, "tollgate_limit_refusals_total", scope="user", code="spend_limit_exceeded") == "2"
    assert value(samples, "tollgate_limit_refusals_total", scope="global", code="limits_unavailable") == "1"


def test_batches_count_rows_written_and_failures() -> None:
    metrics = Metrics()
    metrics.observe_batch(rows=10, seconds=0.01, ok=True)
    metrics.observe_batch(rows=5, seconds=0.02, ok=True)
    metrics.observe_batch(rows=7, seconds=3.0, ok=False)
    samples = parse(metrics.render())
    assert value(samples, "tollgate_recorder_batch_rows_total") == "15"
    assert value(samples, "tollgate_recorder_batch_failures_total") == "1"
    assert value(samples, "tollgate_recorder_batch_seconds_count") == "3"
    assert value(samples, "tollgate_recorder_batch_seconds_bucket", le="0.025") == "2"


def test_unlabelled_metrics_show_zero_before_any_event() -> None:
    samples = parse(Metrics().render())
    assert value(samples, "tollgate_recorder_batch_failures_total") == "0"
    assert value(samples, "tollgate_recorder_batch_seconds_count") == "0"
    assert value(samples, "tollgate_recorder_queue_depth") == "0"


def test_queue_depth_is_set_or_read_from_a_callable() -> None:
    metrics = Metrics()
    metrics.set_queue_depth(4)
    assert value(parse(metrics.render()), "tollgate_recorder_queue_depth") == "4"
    queue = [1, 2]
    metrics.set_queue_depth(lambda: len(queue))
    queue.append(3)
    assert value(parse(metrics.render()), "tollgate_recorder_queue_depth") == "3"


def test_observing_a_request_costs_microseconds() -> None:
    metrics = Metrics()
    tokens = TokenCounts(input=1200, cached_input=1000, output=300, reasoning=120)
    timings: list[int] = []
    for i in range(5000):
        model = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")[i % 3]
        started = time.perf_counter_ns()
        metrics.observe_request(
            endpoint="/v1/chat/completions",
            provider="openai",
            model=model,
            status=200,
            user="alice",
            latency_s=0.42,
            ttfb_s=0.12,
            tokens=tokens,
            cost_pico=3_250_000_000,
            usage_source="reported",
        )
        timings.append(time.perf_counter_ns() - started)
    assert statistics.median(timings[1000:]) < 25_000  # ns: about 2 µs here; generous for noisy machines
