"""The request path, top to bottom.

Every ``/v1/...`` request goes through ``ProxyHandler``:

    receive -> authenticate -> attribute -> route -> admit -> forward
            -> relay while reading usage -> price -> settle and record

Admission reserves the request's largest possible cost on every blocking spend
limit it counts against (``proxy.limits.budget``); a refused request never reaches the
provider.

It is a plain ASGI app (no Request/Response objects) because it is the hot path:
the body is parsed once to find the model and the stream flag, and is never
re-serialised except to turn on ``stream_options.include_usage``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from pricing import Catalog, PriceCard, TokenCounts, cost_to_pico, decimal_text, pico_to_usd, price_tokens
from proxy.admin.metrics import Metrics
from proxy.attribution import Attribution, AttributionReader
from proxy.clock import Clock
from proxy.config import Config
from proxy.encoding import content_encoding, decoded, decoder_for
from proxy.errors import (
    CostUnbounded,
    InvalidJSON,
    LimitsUnavailable,
    MissingModel,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    ProviderKeyMissing,
    RecordingUnavailable,
    SpendLimitExceeded,
    TollgateError,
    Unauthorized,
    UnsupportedMediaType,
    render_error,
)
from proxy.estimate import estimate_answer, estimate_stream
from proxy.forward import Upstream, UpstreamResponse
from proxy.keys import KeyRing, bearer_token
from proxy.limits.bounds import request_bound
from proxy.limits.budget import UNLIMITED, Admission, BudgetKeeper
from proxy.limits.rules import LimitBook, compile_rules
from proxy.paths import read_path
from proxy.providers import Provider, ProviderRouter
from proxy.recording.deferred import (
    PENDING,
    Deferred,
    Finished,
    Queued,
    finished_status,
    queued_response,
    retrieved_response,
)
from proxy.recording.recorder import Recorder
from proxy.recording.records import MAX_LABEL_CHARS, UsageRecord, label_problem
from proxy.sse import StreamMeter
from proxy.usage import CLAMPED, ESTIMATED, MISSING, REPORTED, Usage, clamp_usage, usage_from_body

logger = logging.getLogger("tollgate.handler")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Endpoints whose responses carry token usage.
METERED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"})
# Endpoints whose streams report usage only when asked to with stream_options.include_usage.
_USAGE_OPT_IN_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
NO_USAGE = "none"  # usage_source of requests to endpoints that carry no usage

# Never forwarded either way (RFC 9110 section 7.6.1), plus what the HTTP client sets itself.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
# Provider headers that make no sense, or say too much, on Tollgate's origin: cookies and alternative
# services are the provider's, not Tollgate's.
_NEVER_RELAYED = frozenset({b"set-cookie", b"alt-svc"})
# With a managed key the provider account is Tollgate's: its organisation and project stay private.
_ACCOUNT_HEADERS = frozenset({b"openai-organization", b"openai-project"})
_INCLUDE_USAGE = b'"stream_options":{"include_usage":true},'
# Request ids: a random prefix per process and a counter; unique across workers, and far cheaper than uuid4.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


@dataclass(slots=True)
class _Request:
    """What the path learns about a request as it goes."""

    request_id: str
    method: str
    path: str
    started: float
    started_at: datetime
    model: str | None = None
    stream: bool = False
    provider: Provider | None = None
    attribution: Attribution = Attribution()
    ttfb: float | None = None
    hide_usage: bool = False
    metered: bool = False
    recorded: bool = False
    retrieves: str | None = None  # the stored response a GET /v1/responses/{id} (or its cancel) fetches
    canonical: str = ""  # the path as judged (see proxy.paths)
    payload: dict[str, Any] | None = None
    admission: Admission = UNLIMITED
    managed: bool = False
    cost: tuple[int | None, bool] | None = None  # (picodollars, unpriced), once priced


class ProxyHandler:
    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        upstream: Upstream,
        recorder: Recorder,
        budget: BudgetKeeper,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.upstream = upstream
        self.recorder = recorder
        self.budget = budget
        self._unpriced_warned: set[str] = set()
        # (provider, requested model) -> dearer models the provider answered with instead, learned at run time.
        self._substitutes: dict[tuple[str, str], tuple[PriceCard, ...]] = {}
        self.configure(config, catalog)

    def configure(self, config: Config, catalog: Catalog) -> None:
        """Take a (new) config: everything it decides is built first, then swapped in at once."""
        router = ProviderRouter(config.providers)
        limits = LimitBook(compile_rules(config.limits))
        keys = KeyRing(config.keys)
        attribution = AttributionReader(config.attribution, config.teams)
        self.catalog, self.router, self.limits, self.keys, self.attribution = catalog, router, limits, keys, attribution
        self.managed_only = config.auth.mode == "managed"
        self.media_tokens = config.budget.image_tokens
        self.max_body_bytes = config.server.max_body_bytes
        self.cancel_on_disconnect = config.server.on_client_disconnect == "cancel"
        self.cost_header = config.server.cost_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _Request(
            request_id=f"{_ID_PREFIX}{next(_ID_COUNTER):016x}",
            method=scope["method"],
            path=scope["path"],
            started=time.perf_counter(),
            started_at=self.clock(),
        )
        try:
            response = await self._forward(scope, receive, request)
        except TollgateError as error:
            await self._refuse(send, request, error)
            return
        except Exception:
            logger.exception("request %s failed inside Tollgate", request.request_id)
            await self._refuse(send, request, TollgateError("Tollgate failed to handle the request; see its log."))
            return
        if response.headers and _is_event_stream(response.headers):
            await self._relay_stream(receive, send, request, response)
            return
        try:
            await self._relay_body(send, request, response)
        except Exception:
            # Nothing was sent yet: the client gets an error in the API's shape, never a bare 500.
            logger.exception("request %s failed inside Tollgate after the provider answered", request.request_id)
            await self._refuse(send, request, TollgateError("Tollgate failed to relay the answer; see its log."))

    async def _forward(self, scope: Scope, receive: Receive, request: _Request) -> UpstreamResponse:
        """Receive, authenticate, attribute, route, admit, and send the request upstream."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        try:
            path = read_path(scope.get("raw_path"), request.path, scope["query_string"])
        except NotFound:
            request.path = request.path[:MAX_LABEL_CHARS].replace("\x00", "?")  # what the row can hold
            raise
        request.path, request.canonical = path.text, path.canonical
        if not path.raw.startswith("/v1/"):
            raise NotFound(f"Tollgate does not forward the path {path.text!r}: its /v1 prefix is percent-encoded.")
        # Authenticated before the body is read: an anonymous client cannot make Tollgate read and parse it.
        token = bearer_token(_header(headers, b"authorization"))
        key = self.keys.identify(token) if self.keys else None
        if key is None and self.managed_only:
            if token is None:
                raise Unauthorized("A Tollgate API key is required: send it as 'Authorization: Bearer <key>'.")
            raise Unauthorized(
                "The Tollgate API key presented is not valid: check it, or make one with `tollgate keys new`."
            )
        body = await self._receive_body(receive, headers)
        metered = request.metered = request.method == "POST" and path.canonical in METERED_PATHS
        request.retrieves = retrieved_response(request.method, path.text)
        body_user = None
        hide_usage = False
        if metered:
            body, body_user, hide_usage = self._read_metered_body(request, path.canonical, headers, body)
        elif body and _header(headers, b"content-type").startswith(b"application/json"):
            request.model = _model_of(body)
        request.attribution = self.attribution.read(headers, body_user, key)

        provider = self.router.route(request.model) if request.model else self.router.default
        if provider is None:
            if request.model:
                raise ModelNotFound(
                    f"The model '{request.model}' is not served by any provider configured in Tollgate."
                )
            raise ModelNotFound("No provider is configured in Tollgate.")
        request.provider = provider
        request.hide_usage = hide_usage
        request.managed = key is not None
        if request.managed and provider.api_key is None:
            missing = (
                f"set ${provider.api_key_env} where Tollgate runs" if provider.api_key_env else "set its api_key_env"
            )
            raise ProviderKeyMissing(f"Provider '{provider.name}' has no API key in Tollgate: {missing}.")
        if not self.recorder.can_record:
            raise RecordingUnavailable(
                "Tollgate cannot record usage right now (its journal cannot be written and its database is "
                "unreachable), so it forwards nothing; try again shortly."
            )
        if self.limits:
            await self._admit(request, body)

        upstream_headers = self._upstream_headers(headers, provider, request.managed, metered)
        return await self.upstream.send(
            request.method,
            provider.url(path.raw, scope["query_string"]),
            upstream_headers,
            body,
            connect_timeout=provider.connect_timeout,
            read_timeout=provider.read_timeout,
            retries=provider.retries,
            retry_max_seconds=provider.retry_max_seconds,
        )

    async def _admit(self, request: _Request, body: bytes) -> None:
        """Reserve the request's largest possible cost on every limit it counts against, or refuse it."""
        counters = self.limits.counters(request.attribution, request.started_at)
        if not counters:
            return
        bound, why = 0, "it carries no usage"
        if any(c.block_pico is not None for c in counters) and request.payload is not None and request.model:
            try:
                bound, why = self._bound(request, body)
            except CostUnbounded as error:
                scope = next(c for c in counters if c.block_pico is not None).scope
                raise CostUnbounded(error.message, scope=scope) from None
        request.admission = await self.budget.admit(counters, bound, why)

    def _bound(self, request: _Request, body: bytes) -> tuple[int, str]:
        """The request's cost bound, over every model that may answer it (see ``proxy.limits.bounds``)."""
        assert request.payload is not None and request.model is not None and request.provider is not None
        embeddings = request.canonical == "/v1/embeddings"
        # A provider may answer with another model than asked for: a router's fallbacks ("models"), the
        # provider's configured bound_models, or a substitution seen before. The bound covers them all.
        names = [*_fallback_models(request.payload), *request.provider.bound_models]
        candidates = [(name, self.catalog.lookup(name)) for name in names]
        candidates += [(card.model, card) for card in self._substitutes.get((request.provider.name, request.model), ())]
        requested = self.catalog.lookup(request.model)
        if requested is not None or not candidates:
            candidates.append((request.model, requested))
        cards: dict[str, PriceCard] = {}
        for name, card in candidates:
            if card is None:  # a model that may answer has no price: nothing bounds the request
                return request_bound(None, body, {"model": name}, embeddings=embeddings, media_tokens=0)
            cards[card.model] = card
        bounds = [
            request_bound(card, body, request.payload, embeddings=embeddings, media_tokens=self.media_tokens)
            for card in cards.values()
        ]
        return max(bounds, key=lambda bound: bound[0])

    async def _receive_body(self, receive: Receive, headers: list[tuple[bytes, bytes]]) -> bytes:
        declared = _header(headers, b"content-length")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLarge(
                f"The request body is {int(declared)} bytes; this Tollgate accepts at most {self.max_body_bytes}."
            )
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return body
        parts = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(
                    f"The request body exceeds {self.max_body_bytes} bytes, the most this Tollgate accepts."
                )
            parts.append(chunk)
        return b"".join(parts)

    def _read_metered_body(
        self, request: _Request, endpoint: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[bytes, str | None, bool]:
        """Find model, stream flag and user; turn on usage reporting for streams that lack it."""
        content_type = _header(headers, b"content-type")
        if content_type and not content_type.startswith(b"application/json"):
            raise UnsupportedMediaType(
                f"{request.path} takes a JSON body: send 'Content-Type: application/json', "
                f"not '{content_type.decode('latin-1')}'."
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSON(f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(payload, dict):
            raise InvalidJSON("The request body must be a JSON object.")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise MissingModel("You must provide a model parameter.")
        problem = label_problem(model)
        if problem is not None:
            raise ModelNotFound(f"No model is served by that name: it {problem}.")
        request.model = model
        request.payload = payload
        request.stream = payload.get("stream") is True
        user = payload.get("user")
        hide_usage = False
        if request.stream and endpoint in _USAGE_OPT_IN_PATHS:
            body, hide_usage = _with_usage_reporting(body, payload)
        return body, user if isinstance(user, str) else None, hide_usage

    def _upstream_headers(
        self, headers: list[tuple[bytes, bytes]], provider: Provider, managed: bool, metered: bool
    ) -> list[tuple[str, str]]:
        strip_attribution = self.attribution.strip
        out: list[tuple[str, str]] = []
        for name, value in headers:
            if name in _HOP_BY_HOP:
                continue
            if managed and name == b"authorization":
                continue
            if metered and name == b"accept-encoding":
                continue
            if strip_attribution and self.attribution.is_attribution_header(name):
                continue
            out.append((name.decode("latin-1"), value.decode("latin-1")))
        if managed:
            out.append(("authorization", f"Bearer {provider.api_key}"))
        if metered:
            # Usage is read from the body as it passes, so it must arrive uncompressed.
            out.append(("accept-encoding", "identity"))
        out.extend(provider.extra_headers)
        return out

    async def _relay_body(self, send: Send, request: _Request, response: UpstreamResponse) -> None:
        try:
            body = await response.read()
        except TollgateError as error:
            await self._refuse(send, request, error)
            return
        request.ttfb = time.perf_counter() - request.started
        usage, estimated = None, False
        deferred: Deferred | None = None
        readable = decoded(body, response.headers) if response.status < 400 else None  # the client gets the bytes
        if request.metered and response.status < 400:
            usage = usage_from_body(readable) if readable is not None else None
            queued = queued_response(readable) if usage is None and readable is not None else None
            if queued is not None:  # a background response: its usage comes when it is fetched
                keys = tuple(counter.key for counter in request.admission.counters)
                deferred = Queued(queued, request.request_id, request.admission.bound, keys)
            elif usage is None:
                tokens = estimate_answer(request.payload, readable or b"")
                usage, estimated = Usage(tokens=tokens, model=request.model), True
        elif request.retrieves is not None and response.status == 200 and readable is not None:
            if finished_status(readable) is not None:
                deferred = self._finished(request.retrieves, usage_from_body(readable))
        # Recorded (and journaled) before the answer goes out: a client that has its answer has its row. So the
        # headers can say what the request cost, and what the limit leaves once it is settled.
        if not self._record(
            request, response.status, usage, request.metered, None, estimated=estimated, deferred=deferred
        ):
            await self.recorder.write_through()
        headers = _response_headers(response.headers, request, self.budget.remaining(request.admission), streamed=False)
        cost_pico = request.cost[0] if request.cost is not None else None
        if cost_pico is not None and self.cost_header:
            headers.append((b"x-tollgate-cost-usd", decimal_text(pico_to_usd(cost_pico)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _relay_stream(self, receive: Receive, send: Send, request: _Request, response: UpstreamResponse) -> None:
        metered = request.metered
        meter = StreamMeter(hide_usage=request.hide_usage)
        error_type: str | None = None
        recorded = False
        held = b""  # the stream's last events wait until the request is recorded
        # By default a stream is read to its end even when the client has gone, so that its usage arrives;
        # "cancel" stops at once, and the usage is then estimated from what was streamed.
        gone = asyncio.ensure_future(receive()) if self.cancel_on_disconnect else None
        # A stream the provider compressed anyway is read through a decoder. The client gets the provider's bytes,
        # unless Tollgate hides usage in it: that needs the events, so the client then gets them decoded.
        coding = content_encoding(response.headers)
        decoder = decoder_for(coding) if coding is not None else None
        if coding is not None and decoder is None:
            meter.sse = False  # unreadable: relayed as it is, and estimated
        try:
            headers = _response_headers(response.headers, request, request.admission.remaining_pico, streamed=True)
            if decoder is not None and request.hide_usage:
                headers = [(name, value) for name, value in headers if name != b"content-encoding"]
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            try:
                async for chunk in response.chunks():
                    if request.ttfb is None:
                        request.ttfb = time.perf_counter() - request.started
                    out = meter.feed(decoder.decompress(chunk) if decoder is not None else chunk)
                    if decoder is not None and not request.hide_usage:
                        out = chunk
                    if held or meter.finished:
                        held += out
                    elif out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                    if gone is not None and gone.done():
                        error_type = "client_disconnected"
                        break
            except TollgateError as error:
                # The provider dropped the stream: the client keeps what arrived, and the stream ends cleanly.
                logger.warning("request %s: %s", request.request_id, error.message)
                error_type = error.code
            held += meter.finish()
            response.release()
            durable = self._record_stream(request, response.status, meter, metered, error_type)
            recorded = True
            if not durable:
                await self.recorder.write_through()
            await send({"type": "http.response.body", "body": held})
        except BaseException:
            # The client went away (or the server is stopping): the request is still recorded.
            if not recorded:
                self._record_stream(request, response.status, meter, metered, error_type or "client_disconnected")
            raise
        finally:
            if gone is not None:
                gone.cancel()
            response.release()

    def _record_stream(
        self, request: _Request, status: int, meter: StreamMeter, metered: bool, error_type: str | None
    ) -> bool:
        if request.retrieves is not None and meter.usage is not None:  # a streamed fetch of a background response
            finished = self._finished(request.retrieves, meter.usage)
            return self._record(request, status, None, False, error_type, deferred=finished)
        usage, estimated = meter.usage, False
        # No usage from a stream that was answered (even one that hung before its first event): estimated,
        # never recorded as free.
        if usage is None and metered and status < 400:
            tokens = estimate_stream(request.payload, meter.received.parts, meter.received.total)
            usage, estimated = Usage(tokens=tokens, model=request.model), True
        return self._record(request, status, usage, metered, error_type, estimated=estimated)

    async def _refuse(self, send: Send, request: _Request, error: TollgateError) -> None:
        if isinstance(error, (SpendLimitExceeded, LimitsUnavailable, CostUnbounded)):
            self.metrics.observe_refusal(scope=error.scope or "", code=error.code or "")
        headers = [
            (b"content-type", b"application/json"),
            (b"x-tollgate-request-id", request.request_id.encode()),
            *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
        ]
        if not self._record(request, error.status, None, False, error.code or error.type):
            await self.recorder.write_through()
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": render_error(error)})

    def _price(self, request: _Request, usage: Usage | None) -> tuple[int | None, bool]:
        """(cost in picodollars, unpriced) of a request's usage; (None, False) when it has none."""
        card, cost, unpriced = self._cost(usage, request.model)
        admission = request.admission
        if card is not None and cost is not None and admission.leased and cost > admission.bound:
            self._overran(request, card, cost)
        return cost, unpriced

    def _cost(self, usage: Usage | None, requested: str | None) -> tuple[PriceCard | None, int | None, bool]:
        """(the card that priced it, cost in picodollars, unpriced) of ``usage``; no cost when there is none."""
        model_served = (usage.model if usage is not None else None) or requested
        if usage is None or model_served is None:
            return None, None, False
        card = self.catalog.lookup(model_served)
        if card is None and requested is not None and requested != model_served:
            card = self.catalog.lookup(requested)
        if card is None:
            if model_served not in self._unpriced_warned:
                self._unpriced_warned.add(model_served)
                logger.warning("no price for model %r: its usage is recorded as unpriced", model_served)
            return None, None, True
        return card, cost_to_pico(price_tokens(card, usage.tokens, usage.service_tier).total), False

    def _finished(self, response_id: str, usage: Usage | None) -> Finished:
        """A finished background response's usage, priced, to complete the row of the request that made it."""
        usage = usage if usage is not None else Usage(tokens=_NO_TOKENS)
        card = self.catalog.lookup(usage.model) if usage.model is not None else None
        usage, _ = clamp_usage(usage, card)
        _, cost, unpriced = self._cost(usage, None)
        if usage.model is None and usage.tokens == _NO_TOKENS:
            cost, unpriced = 0, False  # finished before it ran: nothing to pay
        return Finished(response_id, usage.tokens, usage.model, usage.service_tier, cost, unpriced)

    def _overran(self, request: _Request, served: PriceCard, cost: int) -> None:
        """A request cost more than it was admitted with: a hole in the hard limit, said loudly and closed."""
        bound = request.admission.bound
        self.metrics.observe_bound_overrun(model=served.model)
        logger.error(
            "BOUND EXCEEDED: request %s (model %r, answered as %r) cost $%s, more than its bound of $%s; "
            "spend may pass a blocking limit by the difference",
            request.request_id,
            request.model,
            served.model,
            decimal_text(pico_to_usd(cost)),
            decimal_text(pico_to_usd(bound)),
        )
        provider = request.provider
        if provider is not None and request.model is not None and self.catalog.lookup(request.model) != served:
            # The provider answered with a dearer model than asked for: from now on, bound by that one too.
            key = (provider.name, request.model)
            known = self._substitutes.get(key, ())
            if served not in known:
                self._substitutes[key] = (*known, served)

    def _record(
        self,
        request: _Request,
        status: int,
        usage: Usage | None,
        metered: bool,
        error: str | None,
        *,
        estimated: bool = False,
        deferred: Deferred | None = None,
    ) -> bool:
        """Price, settle and queue the request's record, once; False if it is not on disk yet."""
        if request.recorded:
            return True
        request.recorded = True
        model_served = (usage.model if usage is not None else None) or request.model
        clamped = False
        if usage is not None:
            card = self.catalog.lookup(model_served) if model_served is not None else None
            usage, clamped = clamp_usage(usage, card)
            if clamped:
                logger.error(
                    "IMPOSSIBLE USAGE: request %s (model %r) reported more tokens than the model can use; "
                    "counts clamped to %d and the row flagged %r",
                    request.request_id,
                    model_served,
                    max(dataclasses.astuple(usage.tokens)),
                    CLAMPED,
                )
        tokens = usage.tokens if usage is not None else _NO_TOKENS
        if request.cost is None:
            request.cost = self._price(request, usage)
        cost_pico, unpriced = request.cost
        attribution = request.attribution
        ended = time.perf_counter()
        # A background create holds its bound on the limits until its usage arrives (see proxy.recording.deferred).
        held = request.admission.bound if isinstance(deferred, Queued) else (cost_pico or 0)
        charges = self.budget.settle(request.admission, held) if request.admission.counters else ()
        latency = ended - request.started
        source = (
            (CLAMPED if clamped else ESTIMATED if estimated else REPORTED)
            if usage is not None
            else PENDING
            if isinstance(deferred, Queued)
            else (MISSING if metered and status < 400 else NO_USAGE)
        )
        self.metrics.observe_request(
            endpoint=request.path,
            provider=request.provider.name if request.provider else None,
            model=model_served,
            status=status,
            user=request.attribution.user,
            latency_s=latency,
            ttfb_s=request.ttfb,
            tokens=usage.tokens if usage is not None else None,
            cost_pico=cost_pico,
            usage_source=source,
        )
        return self.recorder.submit(
            UsageRecord(
                request_id=request.request_id,
                started_at=request.started_at,
                ended_at=self.clock(),
                method=request.method,
                endpoint=request.path,
                provider=request.provider.name if request.provider else None,
                model_requested=request.model,
                model_served=model_served if usage is not None else None,
                stream=request.stream,
                status=status,
                user_id=attribution.user,
                team_id=attribution.team,
                thread_id=attribution.thread,
                agent=attribution.agent,
                key_name=attribution.key,
                tags=orjson.dumps(dict(attribution.tags)).decode() if attribution.tags else None,
                input_tokens=tokens.input,
                cached_input_tokens=tokens.cached_input,
                cache_write_tokens=tokens.cache_write,
                cache_write_1h_tokens=tokens.cache_write_1h,
                cache_write_12h_tokens=tokens.cache_write_12h,
                output_tokens=tokens.output,
                reasoning_tokens=tokens.reasoning,
                audio_input_tokens=tokens.audio_input,
                audio_output_tokens=tokens.audio_output,
                service_tier=usage.service_tier if usage is not None else None,
                cost_pico=cost_pico,
                unpriced=unpriced,
                usage_source=source,
                latency_ms=latency * 1e3,
                ttfb_ms=request.ttfb * 1e3 if request.ttfb is not None else None,
                error_type=error,
            ),
            charges,
            deferred,
        )


_NO_TOKENS = TokenCounts()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key == name:
            return value
    return b""


def _is_event_stream(headers: Any) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False


def _response_headers(
    headers: Any, request: _Request, remaining: int | None, *, streamed: bool
) -> list[tuple[bytes, bytes]]:
    managed = request.managed
    out = [
        (name, value)
        for name, value in headers
        if (name not in _HOP_BY_HOP or (name == b"content-length" and not streamed))
        and name not in _NEVER_RELAYED
        and not (managed and name in _ACCOUNT_HEADERS)
    ]
    out.append((b"x-tollgate-request-id", request.request_id.encode()))
    if remaining is not None:
        out.append((b"x-tollgate-limit-remaining-usd", decimal_text(pico_to_usd(max(remaining, 0))).encode()))
    return out


def _fallback_models(payload: dict[str, Any]) -> list[str]:
    """Models a router may fall back to (OpenRouter's ``models`` list), each of which may answer the request."""
    models = payload.get("models")
    return [m for m in models if isinstance(m, str) and m][:16] if isinstance(models, list) else []


def _model_of(body: bytes) -> str | None:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) and model and label_problem(model) is None else None


def _with_usage_reporting(body: bytes, payload: dict[str, Any]) -> tuple[bytes, bool]:
    """The body with ``stream_options.include_usage`` on, and whether Tollgate turned it on."""
    options = payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body, False
    if options is None and "stream_options" not in payload:
        # Insert the member after the opening brace: the rest of the body goes upstream byte for byte.
        start = body.index(b"{") + 1
        return body[:start] + _INCLUDE_USAGE + body[start:], True
    payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return orjson.dumps(payload), True
