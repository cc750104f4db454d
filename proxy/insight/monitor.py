"""The anomaly monitor: a background task that looks at the small rollups every ``check_interval`` seconds.

Each look (``check``, on a worker thread) judges the current UTC hour and the one before it
(an hour that ended between two looks is still judged once whole), and every thread minute
of the last two minutes, so a runaway loop alerts within a minute. Baselines change only
when the hour does, so they are computed once per hour judged and kept. Every finding is
claimed in the ``anomalies`` table before it is alerted: with many workers and instances
on one database, exactly one of them alerts it. Once an hour the monitor prunes the hourly
rows older than the baseline window and the thread minutes older than an hour.

Every worker runs one; with ``[anomalies] enabled = false`` it only prunes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from pricing import pico_to_usd
from proxy.clock import Clock, system_clock
from proxy.config import AnomaliesConfig
from proxy.insight.anomalies import (
    Anomaly,
    Baseline,
    Rules,
    baseline_of,
    explain,
    explain_runaway,
    is_runaway,
    judge_hour,
    scope_medians,
)
from proxy.insight.history import EntityKey, busy_minutes, claim_anomaly, hour_figures, hourly_history
from proxy.limits.alerts import Notice
from proxy.recording.hourly import hour_label, minute_label, prune_hourly
from proxy.recording.store import Store

logger = logging.getLogger("tollgate.anomalies")

ExtraCheck = Callable[[datetime], Sequence[Anomaly]]


def rules_from(settings: AnomaliesConfig) -> Rules:
    return Rules(
        percentile=settings.baseline_percentile,
        factor=settings.factor,
        min_pico=int(settings.min_usd * 10**12),
        min_tokens=settings.min_tokens,
        runaway_requests=settings.runaway_requests_per_minute,
        runaway_tokens=settings.runaway_tokens_per_minute,
    )


class AnomalyMonitor:
    """Finds anomalies in the hourly rollup and thread minutes, claims each once, and hands it to ``emit``.

    ``extra`` checks (the forecast alerts) run once an hour and their findings are claimed the same way.
    """

    def __init__(
        self,
        store: Store,
        settings: AnomaliesConfig,
        emit: Callable[[Notice], None],
        *,
        clock: Clock = system_clock,
        extra: Sequence[ExtraCheck] = (),
    ) -> None:
        self._store = store
        self._settings = settings
        self._rules = rules_from(settings)
        self._emit = emit
        self._clock = clock
        self._extra = list(extra)
        self._baselines: dict[str, tuple[dict[EntityKey, Baseline], dict[str, Baseline]]] = {}
        self._pruned_hour = ""
        self._extra_hour = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tollgate-anomalies")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                found = await asyncio.to_thread(self.check, self._clock())
                for anomaly in found:
                    self._emit(anomaly)
            except Exception:
                logger.exception("looking for anomalies failed; trying again in %.0f s", self._settings.check_interval)
            await asyncio.sleep(self._settings.check_interval)

    def check(self, now: datetime) -> list[Anomaly]:
        """One look at ``now``: the anomalies this worker claimed (and should alert). Runs on a worker thread."""
        hour = hour_label(now)
        if hour != self._pruned_hour:
            self._prune(now)
            self._pruned_hour = hour
        candidates: list[Anomaly] = []
        if self._settings.enabled:
            previous = now - timedelta(hours=1)
            candidates += self._judge_hour(previous, now)
            candidates += self._judge_hour(now, now)
            candidates += self._runaways(now)
        if self._extra and hour != self._extra_hour:
            for check in self._extra:
                candidates += check(now)
            self._extra_hour = hour
        if not candidates:
            return []
        with self._store.write_engine.begin() as conn:
            return [a for a in candidates if claim_anomaly(conn, self._store.dialect, a)]

    def _baselines_for(self, hour: str, start: datetime) -> tuple[dict[EntityKey, Baseline], dict[str, Baseline]]:
        kept = self._baselines.get(hour)
        if kept is None:
            since = hour_label(start - timedelta(days=self._settings.baseline_days))
            with self._store.engine.connect() as conn:
                history = hourly_history(conn, since, hour, self._settings.scopes)
            baselines = {key: baseline_of(hours, self._rules.percentile) for key, hours in history.items()}
            kept = (baselines, scope_medians(baselines))
            # Only the hours still judged: this one and the one before.
            self._baselines = {h: v for h, v in self._baselines.items() if h >= hour_label(start - timedelta(hours=1))}
            self._baselines[hour] = kept
        return kept

    def _judge_hour(self, moment: datetime, now: datetime) -> list[Anomaly]:
        hour = hour_label(moment)
        start = moment.replace(minute=0, second=0, microsecond=0)
        with self._store.engine.connect() as conn:
            figures = hour_figures(conn, hour, self._settings.scopes)
        if not figures:
            return []
        baselines, medians = self._baselines_for(hour, start)
        found = []
        for (scope, entity), seen in sorted(figures.items()):
            verdict = judge_hour(seen, baselines.get((scope, entity)), medians.get(scope), self._rules)
            if verdict is None:
                continue
            kind, against = verdict
            found.append(
                Anomaly(
                    kind=kind,
                    scope=scope,
                    scope_id=entity,
                    window=hour,
                    since=start,
                    time=now,
                    cost_usd=pico_to_usd(seen.cost_pico),
                    baseline_usd=pico_to_usd(against.cost_pico),
                    requests=seen.requests,
                    tokens=seen.tokens,
                    detail=explain(kind, scope, seen, against, self._rules, self._settings.baseline_days),
                )
            )
        return found

    def _runaways(self, now: datetime) -> list[Anomaly]:
        if "thread" not in self._settings.scopes:
            return []
        since = minute_label(now - timedelta(minutes=1))
        rules = self._rules
        with self._store.engine.connect() as conn:
            busy = busy_minutes(conn, since, rules.runaway_requests, rules.runaway_tokens)
        found = []
        for minute, thread, seen in sorted(busy):
            if not is_runaway(seen, rules):
                continue
            began = datetime.fromisoformat(minute).replace(tzinfo=now.tzinfo)
            found.append(
                Anomaly(
                    kind="runaway",
                    scope="thread",
                    scope_id=thread,
                    window=hour_label(began),  # one alert per thread and hour, however long the loop runs
                    since=began,
                    time=now,
                    cost_usd=pico_to_usd(seen.cost_pico),
                    baseline_usd=None,
                    requests=seen.requests,
                    tokens=seen.tokens,
                    detail=explain_runaway(minute, seen, rules),
                )
            )
        # A loop busy in both minutes is claimed once: the first minute found stands for the hour.
        unique: dict[tuple[str, str], Anomaly] = {}
        for anomaly in found:
            unique.setdefault((anomaly.scope_id, anomaly.window), anomaly)
        return list(unique.values())

    def _prune(self, now: datetime) -> None:
        try:
            with self._store.write_engine.begin() as conn:
                prune_hourly(
                    conn,
                    hours_before=now - timedelta(days=self._settings.baseline_days, hours=2),
                    minutes_before=now - timedelta(hours=1),
                )
        except Exception:
            logger.exception("pruning the hourly rollup failed; trying again next hour")
