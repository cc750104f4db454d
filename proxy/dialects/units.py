"""Units beyond tokens, counted from what a provider's answer shows was used (never from what was declared).

- OpenAI Responses: each ``web_search_call`` output item is a web search (its context size is the one
  the answer's ``tools`` echo), each ``file_search_call`` a file-search call, and each distinct
  ``container_id`` of a ``code_interpreter_call`` a container session.
- OpenAI Chat (search models): a choice whose message carries ``url_citation`` annotations ran a search.
  Chat answers give no count, so each such choice is one search (litellm counts one per answer).
  OpenAI-compatible providers that report ``usage.server_tool_use.web_search_requests`` are taken at it.
- Anthropic: ``usage.server_tool_use.web_search_requests`` are web searches, ``web_fetch_requests``
  server-tool requests.
- Gemini: ``groundingMetadata.webSearchQueries`` of each candidate are grounding queries.

Declaring a tool costs nothing: a request that lists ``web_search`` but whose answer ran none counts none.
"""

from __future__ import annotations

from typing import Any

from pricing import NO_UNITS, UnitCounts
from proxy.dialects.base import read_count

_CONTEXT_SIZES = frozenset({"low", "medium", "high"})
_MAX_ITEMS = 10_000  # an answer is never walked further than this


def openai_units(obj: Any) -> UnitCounts:
    """Units of a parsed OpenAI answer (a Responses object or a Chat completion)."""
    if not isinstance(obj, dict):
        return NO_UNITS
    searches = files = 0
    containers: set[str] = set()
    output = obj.get("output")
    for item in output[:_MAX_ITEMS] if isinstance(output, list) else ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "web_search_call":
            searches += 1
        elif kind == "file_search_call":
            files += 1
        elif kind == "code_interpreter_call" and isinstance(item.get("container_id"), str):
            containers.add(item["container_id"])
    choices = obj.get("choices")
    for choice in choices[:_MAX_ITEMS] if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and cites_the_web(message.get("annotations")):
            searches += 1
    usage = obj.get("usage")
    reported = read_count(usage.get("server_tool_use"), "web_search_requests") if isinstance(usage, dict) else 0
    searches = reported or searches
    if not (searches or files or containers):
        return NO_UNITS
    return UnitCounts(
        web_search_calls=searches,
        search_context_size=search_context_size(obj.get("tools")) if searches else None,
        file_search_calls=files,
        container_sessions=len(containers),
    )


def cites_the_web(annotations: Any) -> bool:
    """Whether Chat annotations hold a ``url_citation``: the mark of a search that ran."""
    return isinstance(annotations, list) and any(
        isinstance(a, dict) and a.get("type") == "url_citation" for a in annotations[:_MAX_ITEMS]
    )


def search_context_size(tools: Any) -> str | None:
    """The ``search_context_size`` of the first web search tool (Responses ``tools``), if one says it."""
    for tool in tools[:_MAX_ITEMS] if isinstance(tools, list) else ():
        if isinstance(tool, dict) and str(tool.get("type", "")).startswith("web_search"):
            size = tool.get("search_context_size")
            return size if size in _CONTEXT_SIZES else None
    return None


def request_search_context(payload: Any) -> str | None:
    """The context size a Chat request asks for (``web_search_options``), or a Responses request's tools."""
    if not isinstance(payload, dict):
        return None
    options = payload.get("web_search_options")
    if isinstance(options, dict) and options.get("search_context_size") in _CONTEXT_SIZES:
        return str(options["search_context_size"])
    return search_context_size(payload.get("tools"))


def anthropic_units(usage: Any) -> UnitCounts:
    """Units of Anthropic's ``usage`` object: its ``server_tool_use`` counts."""
    tools = usage.get("server_tool_use") if isinstance(usage, dict) else None
    searches, fetches = read_count(tools, "web_search_requests"), read_count(tools, "web_fetch_requests")
    if not (searches or fetches):
        return NO_UNITS
    return UnitCounts(web_search_calls=searches, server_tool_requests=fetches)


def gemini_units(answer: Any) -> UnitCounts:
    """Units of one Gemini answer: the grounding queries its candidates ran."""
    candidates = answer.get("candidates") if isinstance(answer, dict) else None
    queries = 0
    for candidate in candidates[:_MAX_ITEMS] if isinstance(candidates, list) else ():
        grounding = candidate.get("groundingMetadata") if isinstance(candidate, dict) else None
        found = grounding.get("webSearchQueries") if isinstance(grounding, dict) else None
        queries += len(found) if isinstance(found, list) else 0
    return UnitCounts(grounding_queries=queries) if queries else NO_UNITS
