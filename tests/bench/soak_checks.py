"""What the soak promises, checked against what the client saw and what the database holds.

Pure: outcomes, rows, counters and the limit book in; figures and failures out.

1. Every request Tollgate answered has exactly one row. *Answered* means the client
   got the whole response, or got the status and first chunk of a stream and then
   left on purpose (an abort: Tollgate still finishes and records it). A request
   that failed on the client's side, or whose response was cut off by the kill -9,
   was not answered and owes no row. One exception: an aborted stream that
   Tollgate was still draining when it was killed (the client left less than
   ``ABORT_DRAIN_GRACE`` seconds before the kill) was in flight there, so it is
   counted apart, not required. Missing rows of requests answered within
   ``KILL_RACE_WINDOW`` of the kill are reported apart (``Verdict.kill_race``):
   they are the records of responses sent in the event-loop turn the process
   died in, which reach the journal only on the next turn.
2. No request id is answered twice, and no row is written twice.
3. Recorded cost equals the sum of the row costs: each spend counter's
   ``spent_pico`` equals the sum of ``cost_pico`` of exactly the rows that count
   against it (the rows of its user, started in its window, found by the same
   ``LimitBook`` Tollgate uses), and no row's cost is charged to a counter that
   does not exist. Refused and failed requests have rows without cost.
4. No blocking limit was passed: each counter's spend, and the sum of its rows'
   costs, is at most the tightest blocking limit on it.
5. The limit was exercised: the capped user was refused (429) at least once.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from proxy.attribution import Attribution
from proxy.limits.rules import LimitBook
from tests.bench.soak_database import Row
from tests.bench.soak_load import Outcome

ABORT_DRAIN_GRACE = 2.0  # seconds: an aborted stream is drained by Tollgate for well under this
# Seconds either side of the kill: the client reads a response some milliseconds after Tollgate sent it.
KILL_RACE_WINDOW = 0.5
_SHOWN = 5  # request ids quoted per failure


@dataclass(slots=True)
class Verdict:
    figures: dict[str, object] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    kill_race: list[str] = field(default_factory=list)
    """Rows missing for requests answered right at the kill (see check 1)."""


def judge(
    outcomes: Sequence[Outcome],
    rows: Sequence[Row],
    counters: dict[str, int],
    book: LimitBook,
    *,
    capped_user: str,
    killed_at: float | None,
) -> Verdict:
    verdict = Verdict()
    _judge_rows(verdict, outcomes, rows, killed_at)
    _judge_spend(verdict, rows, counters, book)
    refused = sum(1 for o in outcomes if o.plan.user == capped_user and o.status == 429)
    verdict.figures["429s of the capped user"] = refused
    if refused == 0:
        verdict.failures.append(f"{capped_user} was never refused: the blocking limit was not exercised")
    return verdict


def _in_flight_at_kill(outcome: Outcome, killed_at: float | None) -> bool:
    if killed_at is None or not outcome.aborted:
        return False
    return outcome.started < killed_at and outcome.ended > killed_at - ABORT_DRAIN_GRACE


def _at_kill(outcome: Outcome, killed_at: float | None) -> bool:
    return killed_at is not None and abs(outcome.ended - killed_at) < KILL_RACE_WINDOW


def owing_rows(outcomes: Sequence[Outcome], killed_at: float | None) -> list[Outcome]:
    """The requests that must each have a row (check 1 above)."""
    return [o for o in outcomes if o.answered and o.request_id and not _in_flight_at_kill(o, killed_at)]


def _judge_rows(verdict: Verdict, outcomes: Sequence[Outcome], rows: Sequence[Row], killed_at: float | None) -> None:
    figures, failures = verdict.figures, verdict.failures
    answered = [o for o in outcomes if o.answered]
    statuses = Tally(o.status for o in answered)
    figures["answered"] = len(answered)
    figures["answered by status"] = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=lambda i: str(i[0])))
    figures["aborted by the client"] = sum(1 for o in answered if o.aborted)
    failed = [o for o in outcomes if not o.answered]
    figures["not answered (client failures)"] = len(failed)
    figures["client failures by error"] = ", ".join(f"{e}: {n}" for e, n in Tally(o.failure for o in failed).items())

    without_id = [o for o in answered if not o.request_id]
    if without_id:
        failures.append(f"{len(without_id)} answered responses had no X-Tollgate-Request-Id")
    ids = Tally(o.request_id for o in answered if o.request_id)
    twice = [i for i, n in ids.items() if n > 1]
    figures["request ids answered twice"] = len(twice)
    if twice:
        failures.append(f"{len(twice)} request ids were answered more than once, e.g. {twice[:_SHOWN]}")

    by_id: dict[str, Row] = {}
    written_twice = 0
    for row in rows:
        written_twice += row.request_id in by_id
        by_id[row.request_id] = row
    figures["rows"] = len(rows)
    figures["rows written twice"] = written_twice
    if written_twice:
        failures.append(f"{written_twice} request ids have more than one row")

    excused = [o for o in answered if _in_flight_at_kill(o, killed_at)]
    figures["aborted streams in flight at the kill (no row owed)"] = len(excused)
    figures["  of which have a row anyway"] = sum(1 for o in excused if o.request_id in by_id)
    owed = owing_rows(answered, killed_at)
    missing = [o for o in owed if o.request_id not in by_id]
    at_kill = [o for o in missing if _at_kill(o, killed_at)]
    elsewhere = [o for o in missing if not _at_kill(o, killed_at)]
    figures["answered requests without a row"] = len(missing)
    figures[f"  of which answered within {KILL_RACE_WINDOW} s of the kill"] = len(at_kill)
    if elsewhere:
        failures.append(f"{len(elsewhere)} answered requests have no row: " + _describe(elsewhere, killed_at))
    if at_kill:
        verdict.kill_race.append(
            f"{len(at_kill)} requests answered as Tollgate was killed have no row (their records were not yet in "
            "the journal): " + _describe(at_kill, killed_at)
        )
    mismatched = [o for o in owed if o.request_id in by_id and by_id[o.request_id].status != o.status]
    if mismatched:
        failures.append(f"{len(mismatched)} rows record another status than the client got: " + _describe(mismatched))
    seen = set(ids)
    figures["rows of requests the client never saw answered"] = sum(1 for r in rows if r.request_id not in seen)
    figures["rows by error_type"] = _tally(r.error_type or "-" for r in rows)
    figures["rows by usage_source"] = _tally(r.usage_source for r in rows)


def _judge_spend(verdict: Verdict, rows: Sequence[Row], counters: dict[str, int], book: LimitBook) -> None:
    figures, failures = verdict.figures, verdict.failures
    expected: dict[str, int] = {}
    limits: dict[str, int | None] = {}
    for row in rows:
        for counter in book.counters(Attribution(user=row.user_id), row.started_at):
            expected[counter.key] = expected.get(counter.key, 0) + (row.cost_pico or 0)
            limits[counter.key] = counter.block_pico
    row_cost = sum(r.cost_pico or 0 for r in rows)
    figures["sum of row costs (USD)"] = _usd(row_cost)
    figures["sum of counter spend (USD)"] = _usd(sum(counters.values()))
    for key in sorted(set(expected) | set(counters)):
        spent, summed = counters.get(key, 0), expected.get(key, 0)
        if spent != summed:
            failures.append(f"counter {key} records {spent} picodollars, its rows cost {summed}")
        block = limits.get(key)
        if block is not None and max(spent, summed) > block:
            failures.append(f"counter {key} passed its blocking limit: {max(spent, summed)} > {block} picodollars")
    figures["counters checked"] = len(set(expected) | set(counters))
    tightest = min(((k, b) for k, b in limits.items() if b is not None), key=lambda item: item[1], default=None)
    if tightest is not None:
        key, block = tightest
        figures["tightest counter: spent / limit (USD)"] = f"{_usd(counters.get(key, 0))} / {_usd(block)} ({key})"


def _describe(outcomes: Sequence[Outcome], killed_at: float | None = None) -> str:
    parts = []
    for o in outcomes[:_SHOWN]:
        when = f", ended {o.ended - killed_at:+.3f} s from the kill" if killed_at is not None else ""
        parts.append(f"{o.request_id} ({o.plan.kind}, status {o.status}{when})")
    return "; ".join(parts)


def _tally(values: Iterable[str]) -> str:
    return ", ".join(f"{v}: {n}" for v, n in sorted(Tally(values).items()))


def _usd(pico: int) -> str:
    return f"{pico / 10**12:.6f}"
