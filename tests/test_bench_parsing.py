"""The benchmark's own parts: reading wrk's report, judging goals, rendering tables, counting CPU.

tests/bench itself is not collected by pytest; these run in the default suite.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.bench.goals import Goal, judge, ratio_at_least, requests_per_s
from tests.bench.processes import spawn
from tests.bench.report import render_table
from tests.bench.results import Measurement
from tests.bench.wrk import lua_string, parse_wrk_output, to_ms

LATENCY_RUN = """\
Running 1s test @ http://127.0.0.1:52405/v1/chat/completions
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    37.78us   78.16us   2.38ms   98.80%
    Req/Sec   102.30k     7.91k  112.11k    81.82%
  Latency Distribution
     50%   31.00us
     75%   36.00us
     90%    1.52ms
     99%    2.01s
  111502 requests in 1.10s, 18.18MB read
  Non-2xx or 3xx responses: 17
Requests/sec: 101353.75
Transfer/sec:     16.53MB
bench-sent: 111505
"""

THROUGHPUT_RUN = """\
Running 10s test @ http://127.0.0.1:40000/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.52ms    2.01ms  30.12ms   90.12%
    Req/Sec     3.05k   150.32     3.30k    80.00%
  30512 requests in 10.00s, 23.80MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:   3050.12
Transfer/sec:      2.38MB
bench-sent: 30544
"""


def test_latency_run_gives_percentiles_in_ms_and_counts() -> None:
    result = parse_wrk_output(LATENCY_RUN)
    assert result.latency_ms == pytest.approx({50.0: 0.031, 75.0: 0.036, 90.0: 1.52, 99.0: 2010.0})
    assert (result.responses, result.requests_per_s) == (111502, 101353.75)
    assert result.duration_s == pytest.approx(1.1)
    assert (result.non_2xx, result.socket_errors, result.sent) == (17, 0, 111505)


def test_throughput_run_sums_socket_errors_and_has_no_percentiles() -> None:
    result = parse_wrk_output(THROUGHPUT_RUN)
    assert (result.responses, result.requests_per_s, result.socket_errors) == (30512, 3050.12, 3)
    assert result.latency_ms == {}
    assert result.non_2xx == 0


def test_the_thread_stats_line_is_not_read_as_a_percentile() -> None:
    # "+/- Stdev" ends that line with a percentage; only the distribution block counts.
    assert 98.8 not in parse_wrk_output(LATENCY_RUN).latency_ms


def test_a_run_without_the_bench_script_has_no_sent_count() -> None:
    assert parse_wrk_output(THROUGHPUT_RUN.replace("bench-sent: 30544\n", "")).sent is None


def test_text_that_is_not_a_wrk_report_is_refused() -> None:
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("value", "unit", "ms"),
    [("812.00", "us", 0.812), ("1.23", "ms", 1.23), ("2.00", "s", 2000.0), ("1.50", "m", 90_000.0)],
)
def test_wrk_time_units_convert_to_ms(value: str, unit: str, ms: float) -> None:
    assert to_ms(value, unit) == pytest.approx(ms)


def test_unknown_time_unit_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown wrk time unit"):
        to_ms("1", "d")


def test_lua_string_escapes_quotes_backslashes_and_newlines() -> None:
    assert lua_string('{"a":"b\\\\c"}\n') == '"{\\"a\\":\\"b\\\\\\\\c\\"}\\n"'


def test_text_table_aligns_numbers_right_and_words_left() -> None:
    table = render_table(("target", "req/s"), [["direct", "60043"], ["tollgate-pg", "812"]])
    assert table.splitlines() == [
        "target       req/s",
        "-----------  -----",
        "direct       60043",
        "tollgate-pg    812",
    ]


def test_markdown_table_marks_numeric_columns_right_aligned() -> None:
    table = render_table(
        ("target", "p50 ms", "verdict"), [["bare", "0.412", "PASS"], ["x|y", "-", "SKIP"]], markdown=True
    )
    assert table.splitlines() == [
        "| target | p50 ms | verdict |",
        "| --- | ---: | --- |",
        "| bare | 0.412 | PASS |",
        "| x\\|y | - | SKIP |",
    ]


def test_a_ratio_goal_is_judged_against_its_baseline_in_the_same_mode() -> None:
    goal = Goal("tollgate", "throughput / bare", ratio_at_least(requests_per_s, 0.70), baseline="bare")
    measurements = [
        Measurement("bare", "json", requests_per_s=3000.0),
        Measurement("tollgate", "json", requests_per_s=2000.0),
        Measurement("bare", "sse", requests_per_s=2000.0),
        Measurement("tollgate", "sse", requests_per_s=1500.0),
    ]
    verdicts = judge([goal], measurements)
    assert [(v.mode, v.value, v.result) for v in verdicts] == [("json", "0.67", "FAIL"), ("sse", "0.75", "PASS")]


def test_a_goal_whose_baseline_was_skipped_is_skipped() -> None:
    goal = Goal("tollgate", "throughput / bare", ratio_at_least(requests_per_s, 0.70), baseline="bare")
    measurements = [
        Measurement("bare", "json", skipped="not today"),
        Measurement("tollgate", "json", requests_per_s=1.0),
    ]
    [verdict] = judge([goal], measurements)
    assert (verdict.result, verdict.note) == ("SKIP", "baseline bare not measured")


def test_cpu_seconds_counts_the_whole_process_tree(tmp_path: Path) -> None:
    """A parent that sleeps while its child spins for 0.3 s has used about 0.3 s of CPU."""
    spin = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(5)"
    parent = f"import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', {spin!r}]); time.sleep(5)"
    with spawn([sys.executable, "-c", parent], cpus="0", log_path=tmp_path / "log") as process:
        deadline = time.monotonic() + 10
        while process.cpu_seconds() < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0.3 <= process.cpu_seconds() < 2.0
