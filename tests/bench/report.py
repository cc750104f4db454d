"""Rendering a run: the measurements table, the goals table, the JSON file.

Tables come out as aligned plain text, or as Markdown (`--markdown`) to paste
into the README or a pull request.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.bench.goals import Verdict
from tests.bench.results import Measurement

MEASUREMENT_HEADERS = (
    "target",
    "mode",
    "req/s",
    "CPU µs/req",
    "p50 ms",
    "p99 ms",
    "non-2xx",
    "RSS MiB",
    "ready s",
    "rows/responses",
    "drain s",
    "verdict",
)
GOAL_HEADERS = ("target", "mode", "goal", "value", "limit", "result")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False) -> str:
    """Columns whose cells all look like numbers (or `-`) are right-aligned."""
    numeric = [all(_looks_numeric(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]
    if markdown:
        lines = [_markdown_row(headers), _markdown_row(["---:" if n else "---" for n in numeric])]
        return "\n".join([*lines, *(_markdown_row(row) for row in rows)]) + "\n"
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]) + "\n"


def measurement_rows(measurements: Sequence[Measurement], verdicts: Sequence[Verdict]) -> list[list[str]]:
    return [
        _measurement_row(m, [v for v in verdicts if (v.target, v.mode) == (m.target, m.mode)]) for m in measurements
    ]


def goal_rows(verdicts: Sequence[Verdict]) -> list[list[str]]:
    return [
        [v.target, v.mode, v.goal, v.value if not v.note else f"{v.value} ({v.note})", v.limit, v.result]
        for v in verdicts
    ]


def render_report(measurements: Sequence[Measurement], verdicts: Sequence[Verdict], *, markdown: bool = False) -> str:
    # Goals of a target that was not measured say nothing more than "Not measured" below.
    unmeasured = {(m.target, m.mode) for m in measurements if m.skipped or m.error}
    judged = [v for v in verdicts if (v.target, v.mode) not in unmeasured]
    parts = [
        render_table(MEASUREMENT_HEADERS, measurement_rows(measurements, verdicts), markdown=markdown),
        render_table(GOAL_HEADERS, goal_rows(judged), markdown=markdown),
    ]
    problems = [f"{m.target} {m.mode}: {m.skipped or m.error}" for m in measurements if m.skipped or m.error]
    if problems:
        parts.append("\n".join(["Not measured:", *(f"  {p}" for p in problems)]) + "\n")
    return "\n".join(parts)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def as_json(measurements: Sequence[Measurement], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    return {
        "measurements": [_measurement_json(m) for m in measurements],
        "goals": [dataclasses.asdict(v) for v in verdicts],
    }


def _measurement_json(m: Measurement) -> dict[str, Any]:
    document = {**dataclasses.asdict(m), "p50_ms": m.p50_ms, "p99_ms": m.p99_ms, "latency_ms": _keyed(m.latency_ms)}
    if m.recording:
        document["recording"]["rows_match"] = m.recording.rows_match
    return document


def _measurement_row(m: Measurement, verdicts: Sequence[Verdict]) -> list[str]:
    if m.skipped:
        verdict = "SKIP"
    elif m.error:
        verdict = "ERROR"
    elif any(v.result == "FAIL" for v in verdicts):
        verdict = "FAIL"
    else:
        verdict = "PASS" if any(v.result == "PASS" for v in verdicts) else "-"
    recording = m.recording
    return [
        m.target,
        m.mode,
        _number(m.requests_per_s, ".0f"),
        _number(m.cpu_us_per_request, ".0f"),
        _number(m.p50_ms, ".3f"),
        _number(m.p99_ms, ".3f"),
        "-" if m.skipped or m.error else str(m.non_2xx),
        _number(m.peak_rss_mib, ".1f"),
        _number(m.ready_s, ".3f"),
        f"{recording.rows}/{recording.responses}" if recording else "-",
        _number(recording.drain_s if recording else None, ".3f"),
        verdict,
    ]


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _looks_numeric(cell: str) -> bool:
    return cell == "-" or cell.replace(".", "", 1).replace("/", "", 1).lstrip("+-").isdigit()


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _keyed(latency_ms: dict[float, float]) -> dict[str, float]:
    return {f"p{percentile:g}": value for percentile, value in latency_ms.items()}
