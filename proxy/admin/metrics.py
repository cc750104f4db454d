"""Prometheus metrics, kept in plain dicts so that recording a request costs a couple of microseconds.

Every series lives in a dict keyed by the tuple of its label values. There are no locks:
everything is observed from the event loop thread (the recorder times its batch around
``asyncio.to_thread`` and reports it back on the loop). Label values are escaped once, when a
label set is first seen, so :meth:`Metrics.render` only joins strings.

Cardinality: client-chosen values (the path, the model, the user) would let a client grow
memory without bound, so each metric holds at most ``max_label_sets`` label sets. Past that,
a new label set has its client-chosen labels replaced by ``"other"`` and each such
observation adds one to ``tollgate_metrics_label_overflow_total{metric}``. Labels Tollgate
chooses itself (provider, status, token kind, scope) are kept, so the folded series stay few.
User ids are labels only with ``user_labels=True``.

Money: cost is accumulated exactly, as an integer number of picodollars. Only its rendering
is a decimal string that Prometheus will read as a float.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from pricing.cost import CACHE_WRITE_KINDS, PICO_PER_USD
from pricing.cost import TOKEN_KINDS as ALL_TOKEN_KINDS

if TYPE_CHECKING:
    from pricing import TokenCounts

__all__ = ["CONTENT_TYPE", "DEFAULT_BUCKETS", "MAX_LABEL_SETS", "TOKEN_KINDS", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_LABEL_SETS: Final = 10_000
_OTHER: Final = "other"
# One series per token kind, but one for all cache write lifetimes ("cache_write").
_GROUPS: dict[str, list[int]] = {}
for _index, _kind in enumerate(ALL_TOKEN_KINDS):
    _GROUPS.setdefault("cache_write" if _kind in CACHE_WRITE_KINDS else _kind, []).append(_index)
TOKEN_KINDS: Final = tuple(_GROUPS)
_GROUP_INDEXES: Final = tuple(tuple(group) for group in _GROUPS.values())
_COUNTS: Final = operator.attrgetter(*ALL_TOKEN_KINDS)

_Key = tuple[str | int | None, ...]


def _escape(value: str | int | None) -> str:
    if value is None:
        return ""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_float(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return "NaN" if math.isnan(value) else repr(value)


def _format_pico(pico: int) -> str:
    """Picodollars as a USD decimal string, exact: ``150_000_000_000`` -> ``"0.15"``."""
    whole, fraction = divmod(pico, PICO_PER_USD)
    return f"{whole}.{fraction:012d}".rstrip("0").rstrip(".")


class _Cap:
    """How many label sets a metric may hold, and the counter of observations folded past that."""

    def __init__(self, max_label_sets: int, overflow: _Counter) -> None:
        self.max_label_sets = max_label_sets
        self.overflow = overflow


class _Family:
    """One metric: its name and labels, and the escaped label text of every label set it holds."""

    kind = ""

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        fold: Sequence[str] = (),
        cap: _Cap | None = None,
    ) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._fold = frozenset(self.labelnames.index(label) for label in fold)
        self._cap = cap
        self.labels: dict[_Key, str] = {}  # label values -> 'a="x",b="y"'

    def _admit(self, key: _Key) -> _Key:
        """The key to store a new label set under: itself, or its folded form once the metric is full."""
        if self._cap is not None and len(self.labels) >= self._cap.max_label_sets:
            # The folded key is not itself capped: it varies only in labels Tollgate chooses.
            key = tuple(_OTHER if i in self._fold else value for i, value in enumerate(key))
            self._cap.overflow.inc((self.name,))
        if key not in self.labels:
            self.labels[key] = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(self.labelnames, key, strict=True))
        return key

    def header(self) -> str:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"

    def samples(self) -> list[str]:
        raise NotImplementedError


class _Counter(_Family):
    kind = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        fold: Sequence[str] = (),
        cap: _Cap | None = None,
        render_value: Callable[[int], str] = str,
    ) -> None:
        super().__init__(name, help, labelnames, fold=fold, cap=cap)
        self.values: dict[_Key, int] = {}
        self._render_value = render_value
        if not self.labelnames:
            self.inc((), 0)  # a metric without labels shows 0 before its first event

    def inc(self, key: _Key, amount: int = 1) -> None:
        values = self.values
        if key in values:
            values[key] += amount
        else:
            key = self._admit(key)
            values[key] = values.get(key, 0) + amount

    def samples(self) -> list[str]:
        render, labels = self._render_value, self.labels
        return [
            f"{self.name}{{{labels[key]}}} {render(value)}\n" if key else f"{self.name} {render(value)}\n"
            for key, value in self.values.items()
        ]


class _TokenCounter(_Family):
    """Tokens by kind: one row of counts per label set, so a request costs one dict lookup, not seven."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str],
        *,
        fold: Sequence[str],
        cap: _Cap,
    ) -> None:
        super().__init__(name, help, labelnames, fold=fold, cap=cap)
        self.rows: dict[_Key, list[int]] = {}

    def add(self, key: _Key, tokens: TokenCounts) -> None:
        # A row holds every kind as TokenCounts orders them, added in C; rendering groups the cache writes.
        # Adding zeros is cheaper than testing for them; render skips them.
        row = self.rows.get(key)
        if row is None:
            key = self._admit(key)
            row = self.rows.setdefault(key, [0] * len(ALL_TOKEN_KINDS))
        row[:] = map(operator.add, row, _COUNTS(tokens))

    def samples(self) -> list[str]:
        return [
            f'{self.name}{{{self.labels[key]},kind="{kind}"}} {count}\n'
            for key, row in self.rows.items()
            for kind, group in zip(TOKEN_KINDS, _GROUP_INDEXES, strict=True)
            if (count := sum(row[i] for i in group))
        ]


class _Series:
    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0


class _Histogram(_Family):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        fold: Sequence[str] = (),
        cap: _Cap | None = None,
        bounds: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help, labelnames, fold=fold, cap=cap)
        self._bounds = tuple(sorted(bounds))
        self._le = [_format_float(float(bound)) for bound in self._bounds] + ["+Inf"]
        self.series: dict[_Key, _Series] = {}
        if not self.labelnames:
            self._new(())

    def observe(self, key: _Key, value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self._new(key)
        # bisect_left: a value equal to a bound belongs in that bound's bucket (le is "<=").
        series.counts[bisect_left(self._bounds, value)] += 1
        series.sum += value

    def _new(self, key: _Key) -> _Series:
        key = self._admit(key)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Series(len(self._le))
        return series

    def samples(self) -> list[str]:
        lines: list[str] = []
        name = self.name
        for key, series in self.series.items():
            body = self.labels[key]
            prefix = body + "," if body else ""
            braced = "{" + body + "}" if body else ""
            total = 0
            for le, count in zip(self._le, series.counts, strict=True):
                total += count
                lines.append(f'{name}_bucket{{{prefix}le="{le}"}} {total}\n')
            lines.append(f"{name}_sum{braced} {_format_float(series.sum)}\n")
            lines.append(f"{name}_count{braced} {total}\n")
        return lines


class Metrics:
    """Tollgate's Prometheus metrics: observe from the event loop, render for ``GET /metrics``.

    ``user_labels`` adds the user id as a label to the request, token and cost counters (off by
    default: one series per user can be a lot). ``max_label_sets`` caps each metric; see the
    module docstring for what happens past it.
    """

    def __init__(self, *, user_labels: bool = False, max_label_sets: int = MAX_LABEL_SETS) -> None:
        self._user_labels = user_labels
        user = ("user",) if user_labels else ()
        self._overflow = _Counter(
            "tollgate_metrics_label_overflow_total",
            'Observations whose new label set was folded into "other" because the metric was full.',
            ("metric",),
        )
        cap = _Cap(max_label_sets, self._overflow)
        self._requests = _Counter(
            "tollgate_requests_total",
            "Requests proxied, by endpoint, provider, model and HTTP status.",
            ("endpoint", "provider", "model", "status", *user),
            fold=("endpoint", "model", *user),
            cap=cap,
        )
        self._tokens = _TokenCounter(
            "tollgate_tokens_total",
            "Tokens used, by kind (cache_write counts both cache lifetimes).",
            ("endpoint", "provider", "model", *user),
            fold=("endpoint", "model", *user),
            cap=cap,
        )
        self._cost = _Counter(
            "tollgate_cost_usd_total",
            "Cost of requests in USD (summed exactly in picodollars).",
            ("provider", "model", *user),
            fold=("model", *user),
            cap=cap,
            render_value=_format_pico,
        )
        self._unpriced = _Counter(
            "tollgate_unpriced_requests_total",
            "Requests with usage but no price for their model.",
            ("model",),
            fold=("model",),
            cap=cap,
        )
        self._usage_source = _Counter(
            "tollgate_usage_source_total", "Requests by where their token counts came from.", ("source",)
        )
        self._latency = _Histogram(
            "tollgate_upstream_latency_seconds",
            "Whole request time, from receiving it to the end of the relayed response.",
            ("endpoint", "provider"),
            fold=("endpoint",),
            cap=cap,
        )
        self._ttfb = _Histogram(
            "tollgate_upstream_ttfb_seconds",
            "Time from receiving a request to the first byte of the upstream response.",
            ("endpoint", "provider"),
            fold=("endpoint",),
            cap=cap,
        )
        self._refusals = _Counter(
            "tollgate_limit_refusals_total",
            "Requests refused by spend limits, by scope and error code.",
            ("scope", "code"),
        )
        self._bound_overruns = _Counter(
            "tollgate_bound_overruns_total",
            "Requests that cost more than the bound they were admitted with under a blocking limit (should be 0).",
            ("model",),
            fold=("model",),
            cap=cap,
        )
        self._cost_mismatches = _Counter(
            "tollgate_provider_cost_mismatches_total",
            "Requests whose provider-reported cost differs from the catalog's by more than the provider's tolerance.",
            ("provider", "model"),
            fold=("model",),
            cap=cap,
        )
        self._batch_seconds = _Histogram("tollgate_recorder_batch_seconds", "Time to write one batch of usage records.")
        self._batch_rows = _Counter("tollgate_recorder_batch_rows_total", "Usage records written in batches.")
        self._batch_failures = _Counter("tollgate_recorder_batch_failures_total", "Batches whose write failed.")
        self._queue_depth: int | Callable[[], int] = 0

    def observe_request(
        self,
        *,
        endpoint: str,
        provider: str | None,
        model: str | None,
        status: int,
        user: str | None,
        latency_s: float,
        ttfb_s: float | None,
        tokens: TokenCounts | None,
        cost_pico: int | None,
        usage_source: str,
    ) -> None:
        """Count one finished request.

        ``tokens`` is None when the request carried no usage. A request with ``tokens`` but a
        ``cost_pico`` of None counts as unpriced. Zero token counts and zero costs add nothing.
        """
        # Keys are spelled out per case: unpacking a "user" tail into them costs more than the branch.
        if self._user_labels:
            self._requests.inc((endpoint, provider, model, status, user))
            row: _Key = (endpoint, provider, model, user)
            priced: _Key = (provider, model, user)
        else:
            self._requests.inc((endpoint, provider, model, status))
            row = (endpoint, provider, model)
            priced = (provider, model)
        self._usage_source.inc((usage_source,))
        route = (endpoint, provider)
        self._latency.observe(route, latency_s)
        if ttfb_s is not None:
            self._ttfb.observe(route, ttfb_s)
        if tokens is None:
            return
        self._tokens.add(row, tokens)
        if cost_pico is None:
            self._unpriced.inc((model,))
        elif cost_pico > 0:
            self._cost.inc(priced, cost_pico)

    def observe_refusal(self, *, scope: str, code: str) -> None:
        """Count a request refused by limits (``spend_limit_exceeded``, ``limits_unavailable``)."""
        self._refusals.inc((scope, code))

    def observe_bound_overrun(self, *, model: str) -> None:
        """Count a request whose cost passed its admission bound: a hole in a hard limit, to be 0."""
        self._bound_overruns.inc((model,))

    def observe_cost_mismatch(self, *, provider: str, model: str) -> None:
        """Count a request whose provider-reported cost is off the catalog's by more than the tolerance."""
        self._cost_mismatches.inc((provider, model))

    def observe_batch(self, *, rows: int, seconds: float, ok: bool) -> None:
        """Time one recorder batch. ``rows`` count as written only when ``ok``: a failed batch is retried."""
        self._batch_seconds.observe((), seconds)
        if ok:
            self._batch_rows.inc((), rows)
        else:
            self._batch_failures.inc(())

    def set_queue_depth(self, depth: int | Callable[[], int]) -> None:
        """Set the recorder queue depth, or give a callable (``lambda: recorder.queued``) read at each render."""
        self._queue_depth = depth

    def render(self) -> bytes:
        """All metrics in the Prometheus text exposition format 0.0.4 (serve with :data:`CONTENT_TYPE`)."""
        depth = self._queue_depth() if callable(self._queue_depth) else self._queue_depth
        parts: list[str] = []
        for family in (
            self._requests,
            self._tokens,
            self._cost,
            self._unpriced,
            self._usage_source,
            self._latency,
            self._ttfb,
            self._refusals,
            self._bound_overruns,
            self._cost_mismatches,
        ):
            parts.append(family.header())
            parts.extend(family.samples())
        parts.append(
            "# HELP tollgate_recorder_queue_depth Usage records waiting to be written.\n"
            f"# TYPE tollgate_recorder_queue_depth gauge\ntollgate_recorder_queue_depth {depth}\n"
        )
        for family in (self._batch_seconds, self._batch_rows, self._batch_failures, self._overflow):
            parts.append(family.header())
            parts.extend(family.samples())
        return "".join(parts).encode()
