"""Gemini's streamed JSON array through the in-process meter: relayed item by item, and metered."""

from __future__ import annotations

import threading

import orjson

from proxy.inprocess import Meter
from tests.conftest import json_answer
from tests.fakeprovider import FakeProvider
from tests.inprocess.conftest import rows

PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


def _item(metadata: dict[str, int], text: str, finish: bool) -> bytes:
    candidate: dict[str, object] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = "STOP"
    return orjson.dumps({"candidates": [candidate], "usageMetadata": metadata, "modelVersion": "gemini-2.5-flash"})


def test_a_streamed_json_array_reaches_the_app_as_it_arrives(meter: Meter, provider: FakeProvider) -> None:
    first = b"[" + _item({"promptTokenCount": 3}, "Hel", finish=False)
    rest = b",\r\n" + _item({"promptTokenCount": 3, "candidatesTokenCount": 8}, "lo", finish=True) + b"]"
    gate = threading.Event()  # the provider sends the rest only once the app has had the first item
    provider.answer("POST", PATH, json_answer(b"", chunks=(first, rest), gate=gate))
    url = f"http://{provider.host}:{provider.port}{PATH}"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    try:
        with (
            meter.httpx_client() as client,
            client.stream("POST", url, json=body, headers={"x-goog-api-key": "k"}, timeout=5) as answer,
        ):
            pieces = answer.iter_raw()
            received = b""
            while len(received) < len(first):
                received += next(pieces)  # a meter that waited for the whole array would time out here
            assert received == first
            gate.set()
            assert b"".join(pieces) == rest
    finally:
        gate.set()
    [row] = rows(meter)
    assert (row["input_tokens"], row["output_tokens"], row["stream"]) == (3, 8, True)
    assert (row["provider_kind"], row["front_door"]) == ("gemini", "inprocess")
    # Priced by the map's gemini/ entry: input $0.30/M and output $2.50/M, so 3 x 0.30 + 8 x 2.50 = $20.9/M.
    assert (row["cost_pico"], row["unpriced"]) == (20_900_000, False)
