"""What one benchmark run found: a `Measurement` per (target, mode)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.bench.upstream import Mode


@dataclass
class Recording:
    """Rows in `usage_records` against what wrk saw.

    `responses` counts completed responses; `sent` also counts requests still
    in flight when wrk stopped, which the server may or may not record. So the
    rows are right when `responses <= rows <= sent`.
    """

    database: str
    rows: int
    responses: int
    sent: int
    drain_s: float | None  # None: the rows never caught up with the responses

    @property
    def rows_match(self) -> bool:
        return self.responses <= self.rows <= self.sent


@dataclass
class Measurement:
    target: str
    mode: Mode
    workers: int = 1
    skipped: str | None = None
    error: str | None = None
    requests_per_s: float | None = None
    # Server CPU per response in the throughput run: steadier than req/s on a machine shared with others.
    cpu_us_per_request: float | None = None
    latency_ms: dict[float, float] = field(default_factory=dict)
    non_2xx: int = 0
    socket_errors: int = 0
    peak_rss_mib: float | None = None
    ready_s: float | None = None
    recording: Recording | None = None

    @property
    def p50_ms(self) -> float | None:
        return self.latency_ms.get(50.0)

    @property
    def p99_ms(self) -> float | None:
        return self.latency_ms.get(99.0)
