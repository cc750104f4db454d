"""One log line per request, on ``tollgate.access``: what a person reading the log needs, never a key.

``POST /v1/chat/completions 200 user=alice model=gpt-4o-mini tokens=12/10 cost=$0.000021 12.5ms id=...``

With ``server.access_log`` off (the default) only refusals and failures (status 400 and up) get a
line, at ``info``, so a 429 or a 500 always leaves a trace; a request that succeeds then costs one
comparison. Pure: a record in, a line out.
"""

from __future__ import annotations

import logging

from pricing import pico_to_usd
from proxy.money import format_usd
from proxy.recording.records import UsageRecord

access_logger = logging.getLogger("tollgate.access")


def access_line(record: UsageRecord) -> str:
    """The line for ``record``: method, path, status, user, model, tokens in/out, cost, latency, error, id."""
    if record.unpriced:
        cost = "unpriced"
    elif record.cost_pico is None:
        cost = "-"
    else:
        cost = format_usd(pico_to_usd(record.cost_pico))
    parts = [
        record.method,
        record.endpoint,
        str(record.status),
        f"user={record.user_id or '-'}",
        f"model={record.model_served or record.model_requested or '-'}",
        f"tokens={record.input_tokens}/{record.output_tokens}",
        f"cost={cost}",
        f"{record.latency_ms:.1f}ms" if record.latency_ms is not None else "-",
    ]
    if record.error_type:
        parts.append(f"error={record.error_type}")
    if record.provider and record.status >= 500 and not record.error_type:
        parts.append(f"from provider {record.provider}")
    parts.append(f"id={record.request_id}")
    return " ".join(parts)


def log_request(record: UsageRecord, every_request: bool) -> None:
    """Log ``record``'s line: every request when ``every_request``, else refusals and failures only."""
    if every_request or record.status >= 400:
        access_logger.info("%s", access_line(record))
