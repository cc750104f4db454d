"""The static upstream: one nginx master with three servers, JSON, SSE and Anthropic SSE.

nginx answers every path with a canned `gpt-4o-mini` chat completion, so the
upstream costs next to nothing and the targets are what is measured. One
server answers with a JSON body, another with an SSE transcript whose last
chunk carries usage, as OpenAI sends with `stream_options.include_usage`, and
the third with an Anthropic Messages stream (`anthropic-sse` mode), whose usage
comes in `message_start` and `message_delta`.
"""

from __future__ import annotations

import grp
import http.client
import json
import logging
import os
import pwd
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.bench.processes import ProcessFailed, Spawned, free_port, pin, process_tree, spawn

logger = logging.getLogger("tests.bench.upstream")

Mode = Literal["json", "sse", "anthropic-sse"]
MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"

_RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
_ID = "chatcmpl-bench0000000000000000000001"
_CREATED = 1732550400
_FINGERPRINT = "fp_0ba0d124f1"
_USAGE: dict[str, Any] = {
    "prompt_tokens": 1536,
    "completion_tokens": 12,
    "total_tokens": 1548,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
_REPLY = ["Hello!", " How can I help", " you today?"]


def chat_completion_body() -> str:
    return _dumps(
        {
            "id": _ID,
            "object": "chat.completion",
            "created": _CREATED,
            "model": _RESPONSE_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(_REPLY), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )


def sse_transcript() -> str:
    """Six chunks (role, three of content, finish, usage), then `[DONE]`."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": piece} for piece in _REPLY]
    chunks = [_chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]) for delta in deltas]
    chunks.append(_chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    chunks.append(_chunk([], usage=_USAGE))
    return "".join(f"data: {_dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


def anthropic_transcript() -> str:
    """A Messages stream as Anthropic sends it: the same reply, in eight events."""
    usage = {"input_tokens": 512, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 1}
    message: dict[str, Any] = {
        "id": "msg_bench0000000000000001",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "service_tier": "standard"},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": message}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    events += [("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}}) for t in _REPLY]
    events += [
        ("content_block_stop", {"index": 0}),
        (
            "message_delta",
            {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {**usage, "output_tokens": 12}},
        ),
        ("message_stop", {}),
    ]
    return "".join(f"event: {kind}\ndata: {_dumps({'type': kind, **data})}\n\n" for kind, data in events)


def render_nginx_config(workdir: Path, json_port: int, sse_port: int, anthropic_port: int) -> str:
    temp_paths = "\n".join(
        f"    {name}_temp_path {workdir / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
daemon off;
master_process on;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
{_user_directive()}
events {{
    worker_connections 4096;
}}

http {{
    access_log off;
{temp_paths}
    # Keep connections for the whole run, so that neither wrk nor the
    # proxies' pools pay for reconnects (the default closes after 1000).
    keepalive_requests 100000000;
    keepalive_timeout 300s;

    server {{
        listen 127.0.0.1:{json_port};
        default_type application/json;
        location / {{
            return 200 {_nginx_string(chat_completion_body())};
        }}
    }}

    server {{
        listen 127.0.0.1:{sse_port};
        default_type text/event-stream;
        location / {{
            return 200 {_nginx_string(sse_transcript())};
        }}
    }}

    server {{
        listen 127.0.0.1:{anthropic_port};
        default_type text/event-stream;
        location / {{
            return 200 {_nginx_string(anthropic_transcript())};
        }}
    }}
}}
"""


@dataclass
class Upstream:
    process: Spawned
    json_port: int
    sse_port: int
    anthropic_port: int

    def base_url(self, mode: Mode) -> str:
        port = {"json": self.json_port, "sse": self.sse_port, "anthropic-sse": self.anthropic_port}[mode]
        return f"http://127.0.0.1:{port}"

    def pin(self, cpus: set[int]) -> None:
        """Move master and worker: onto the target's core when nginx is the target, else off it."""
        pin(process_tree(self.process.pid), cpus)


def start_upstream(workdir: Path, *, cpus: str, timeout_s: float = 10.0) -> Upstream:
    """Start nginx from a generated config in `workdir`; the caller stops `upstream.process`."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    json_port, sse_port, anthropic_port = free_port(), free_port(), free_port()
    config = workdir / "nginx.conf"
    config.write_text(render_nginx_config(workdir, json_port, sse_port, anthropic_port))
    argv = [nginx, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")]
    upstream = Upstream(spawn(argv, cpus=cpus, log_path=workdir / "nginx.out"), json_port, sse_port, anthropic_port)
    try:
        _wait_until_answering(upstream, timeout_s)
    except BaseException:
        upstream.process.stop()
        raise
    logger.info("nginx upstream on ports %d (json), %d (sse), %d (anthropic-sse)", json_port, sse_port, anthropic_port)
    return upstream


def _wait_until_answering(upstream: Upstream, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = {upstream.json_port, upstream.sse_port, upstream.anthropic_port}
    while pending:
        if not upstream.process.is_running():
            raise ProcessFailed("nginx exited", upstream.process)
        if time.monotonic() > deadline:
            raise ProcessFailed(f"nginx did not answer within {timeout_s:.0f} s", upstream.process)
        for port in list(pending):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                connection.request("GET", "/")
                if connection.getresponse().status == 200:
                    pending.discard(port)
            except OSError:
                pass
            finally:
                connection.close()
        time.sleep(0.01)


def _chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": _RESPONSE_MODEL,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
        "choices": choices,
        "usage": usage,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _nginx_string(text: str) -> str:
    """Quote `text` for an nginx directive; `return` would expand `$name` as a variable, so refuse `$`."""
    if "$" in text:
        raise ValueError("nginx `return` text cannot contain '$'")
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _user_directive() -> str:
    # As root, nginx drops its worker to `nobody:nobody`, a group Debian lacks; stay the current user.
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
