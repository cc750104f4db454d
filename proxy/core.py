"""The metering core: one ``MeteredCall`` per request, through its steps in order.

    begin      judge the path, choose the dialect, authenticate (before the body is read)
    read       what the body says: model, stream, user, the facts of its cost bound
    admit      attribute, route, and reserve its largest cost on every blocking limit
    forward    send it upstream through the ``Upstream`` seam
    answer     read the usage of a whole answer / ``stream``: read it from each event
    record     price, settle the limits, and queue one usage row (``refuse``: the same for a refusal)

The core knows no ASGI and no provider. It talks to the outside through small seams:
the front door that drives it (``proxy.asgi`` for the HTTP proxy, ``proxy.inprocess`` for
an httpx transport inside the app), the upstream client (``proxy.forward``), the dialect
(``proxy.dialects``) and the recorder (``proxy.recording.recorder``). ``Metering`` holds
what every call shares, and swaps in what a reloaded config decides.

Each step is a method, so a front door without a client key (the in-process meter) runs
``judge`` instead of ``begin``, and one that already knows who a call is for and where it
goes runs ``place`` and ``reserve_now`` / ``reserve`` instead of ``admit``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pricing import (
    Catalog,
    PriceCard,
    PriceHistory,
    PriceVersion,
    decimal_text,
    lookup_for_kind,
    pico_to_usd,
    tool_prices,
)
from proxy import settlement
from proxy.admin.metrics import Metrics
from proxy.attribution import Attribution, AttributionReader
from proxy.clock import Clock
from proxy.config import Config, LimitConfig
from proxy.dialects import DIALECTS, dialect_for
from proxy.dialects.base import Dialect, Endpoint, RequestFacts
from proxy.dialects.media import VECTOR_SEARCH
from proxy.encoding import content_encoding, decoded, decoder_for
from proxy.errors import (
    CostUnbounded,
    InvalidForm,
    InvalidJSON,
    LimitsUnavailable,
    MissingModel,
    ModelNotFound,
    NotFound,
    ProviderKeyMissing,
    RateLimitExceeded,
    RecordingUnavailable,
    SpendLimitExceeded,
    TokenRateExceeded,
    TollgateError,
    Unauthorized,
    UnsupportedMediaType,
)
from proxy.estimate import estimate
from proxy.headers import HOP_BY_HOP, NEVER_RELAYED, Headers, header, is_event_stream
from proxy.keys import KeyRing
from proxy.limits.bounds import request_bound
from proxy.limits.budget import UNLIMITED, BudgetKeeper
from proxy.limits.media_bounds import media_bound
from proxy.limits.provider_count import CountRequest
from proxy.limits.rate_keeper import NO_HOLD, RateKeeper
from proxy.limits.rate_tokens import token_bound
from proxy.limits.rates import TOKENS, RateBook, RateCounter, compile_rate_rules
from proxy.limits.rules import Counter
from proxy.limits.runtime import limit_book
from proxy.limits.tighten import Count, PromptBound
from proxy.limits.tool_bounds import tool_fee_bound
from proxy.multipart import MultipartError, boundary_of, read_form
from proxy.paths import RequestPath, read_path
from proxy.providers import Provider, ProviderRouter
from proxy.recording.deferred import Deferred, Queued
from proxy.recording.recorder import Recorder
from proxy.recording.records import MAX_LABEL_CHARS, label_problem
from proxy.request_ids import new_request_id
from proxy.second_look import second_look, tighter_token_hold
from proxy.sse import StreamMeter
from proxy.usage import (
    Usage,
)

if TYPE_CHECKING:  # the HTTP client of the proxy, which the in-process meter never imports
    from proxy.forward import Upstream, UpstreamResponse

logger = logging.getLogger("tollgate.core")

# What a call knows before its body and headers are read (frozen, so every call can share them).
_NO_FACTS = RequestFacts(model=None)
_NOBODY = Attribution()
# A request whose byte bound is more than 1/16 of what a blocking limit leaves is bounded tightly first.
NEAR_LIMIT_SHARE = 16


class Metering:
    """What every call shares: the parts a config decides (swapped whole on reload), and the services."""

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        recorder: Recorder,
        budget: BudgetKeeper,
        metrics: Metrics,
        clock: Clock,
        rate_keeper: RateKeeper | None = None,
    ) -> None:
        self.recorder = recorder
        self.budget = budget
        self.rate_keeper = rate_keeper  # None: rate limits are not kept (a meter built without a database for them)
        self.metrics = metrics
        self.clock = clock
        self.unpriced_warned: set[str | tuple[str, str]] = set()
        self.unmapped_warned: set[tuple[str, str]] = set()  # (provider, Azure deployment) with no model mapped
        # (provider, requested model) -> dearer models the provider answered with instead, learned at run time.
        self.substitutes: dict[tuple[str, str], tuple[PriceCard, ...]] = {}
        self.runtime_limits: tuple[LimitConfig, ...] = ()  # set while the server runs (proxy.limits.runtime)
        self.prices = PriceHistory(catalog)
        self.configure(config, catalog)

    def apply_runtime_limits(self, runtime: tuple[LimitConfig, ...]) -> None:
        """Limits set at run time changed: rebuild the book from the file's limits and these."""
        self.runtime_limits = runtime
        self.limits = limit_book(self.configured_limits, runtime)

    def configure(self, config: Config, catalog: Catalog, versions: Sequence[PriceVersion] | None = None) -> None:
        """Take a (new) config: everything it decides is built first, then swapped in at once.

        ``versions`` are the imported price versions (``pricing.history``); None keeps those known.
        """
        prices = PriceHistory(catalog, self.prices.versions if versions is None else versions)
        router = ProviderRouter(config.providers)
        self.configured_limits = config.limits
        limits = limit_book(config.limits, self.runtime_limits)
        self.rates = RateBook(compile_rate_rules(config.rate_limits) if self.rate_keeper is not None else ())
        keys = KeyRing(config.keys)
        attribution = AttributionReader(config.attribution, config.teams)
        self.catalog, self.router, self.limits, self.keys, self.attribution = catalog, router, limits, keys, attribution
        self.tool_prices = tool_prices(config.pricing_tools)
        self.prices = prices
        self.managed_only = config.auth.mode == "managed"
        self.media_tokens = config.budget.image_tokens
        self.max_body_bytes = config.server.max_body_bytes
        self.cost_header = config.server.cost_header
        self.access_log = config.server.access_log

    def serves(self, path: str) -> bool:
        """Whether a (decoded) path belongs to one of the provider APIs Tollgate meters."""
        lowered = path.lower()
        # Every request asks this first: a loop, not a generator, from the last dialect (OpenAI's ``/v1/``,
        # the most served); any dialect that serves it will do, so the order changes nothing else.
        for dialect in reversed(DIALECTS):
            if dialect.serves(lowered):
                return True
        return False

    def call(
        self,
        method: str,
        raw_path: bytes | None,
        path: str,
        query: bytes,
        headers: Headers,
        front_door: str = "proxy",
    ) -> MeteredCall:
        return MeteredCall(self, method, raw_path, path, query, headers, front_door)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refusal as the client gets it: in its API's error shape."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class MeteredCall:
    """One request through Tollgate, from its headers to its one usage row."""

    def __init__(
        self,
        metering: Metering,
        method: str,
        raw_path: bytes | None,
        path: str,
        query: bytes,
        headers: Headers,
        front_door: str = "proxy",
    ) -> None:
        self.metering = metering
        self.front_door = front_door
        self.request_id = new_request_id()
        self.method = method
        self.path = path[:MAX_LABEL_CHARS].replace("\x00", "?")  # what a row can hold, until judged
        self.headers = headers
        self.started = time.perf_counter()
        self.started_at = metering.clock()
        # The prices of this call, fixed at its start: its bound and its row use the same history even if
        # a reload swaps it meanwhile. The version in force prices the row (see pricing.history).
        self.prices = metering.prices
        self.price_version, self.catalog = self.prices.at(self.started_at)
        self.ttfb: float | None = None
        self.dialect: Dialect = DIALECTS[-1]  # the fallback, for the shape of an early refusal
        self.endpoint: Endpoint | None = None
        self.facts = _NO_FACTS
        self.payload: dict[str, Any] | None = None
        self.body = b""
        self.hide_usage = False
        self.fetches_job: str | None = None
        self.key_name: str | None = None
        self.managed = False
        self.attribution = _NOBODY
        self.provider: Provider | None = None
        self.priced_as: str | None = None  # the model an Azure deployment runs, from [providers.deployments]
        self.admission = UNLIMITED
        self.rate_hold = NO_HOLD
        self.forwarded = False  # the request went upstream: a rate limit counts it even if its answer fails
        self.cost: tuple[int | None, bool] | None = None  # (picodollars, unpriced), once priced
        self.unit_cost: tuple[int | None, str | None] = (None, None)  # (the units' part, units with no price)
        self.created: str | None = None  # the id of a vector store the answer created (see proxy.storage)
        self.provider_cost: int | None = None  # picodollars the provider reported (cost_source = "provider")
        self.recorded = False
        self._raw_path, self._query = raw_path, query
        self._judged: RequestPath | None = None
        self._key: Any = None
        self._wanted: tuple[Sequence[Counter], int, str] | None = None  # a reservation that needs a lease to grow
        self._rates_wanted: tuple[tuple[RateCounter, ...], int] | None = None  # ... and a rate hold
        self._rates_checked = False
        self.clamped: str | None = None  # "<original>-><new>" once a spend limit lowered the output cap
        self.prompt_counted = False  # the prompt was counted for a tighter bound (proxy.second_look) ...
        self.prompt_bound: PromptBound | None = None  # ... and this is what it came to, if it could be
        self._near_limit = False

    @property
    def model(self) -> str | None:
        return self.facts.model

    @property
    def metered(self) -> bool:
        return self.endpoint is not None

    # 1. Before the body: the path, the dialect, the key.

    def begin(self) -> None:
        """Judge the path and authenticate; an anonymous client of managed mode never gets its body read."""
        self.judge()
        self.authenticate()

    def judge(self) -> None:
        """The path, the dialect that speaks it, and the metered endpoint it goes to (if any)."""
        judged = self._judged = read_path(self._raw_path, self.path, self._query)
        self.path = judged.text
        dialect = dialect_for(judged.canonical, self.method, self.headers)
        if dialect is None:
            raise NotFound(f"Tollgate does not forward the path {judged.text!r}: no provider API uses it.")
        self.dialect = dialect
        prefix = "/" + judged.canonical.split("/")[1] + "/"  # "/v1/": what the dialect cuts off for base_url
        if not judged.raw.lower().startswith(prefix):
            raise NotFound(f"Tollgate does not forward the path {judged.text!r}: its prefix is percent-encoded.")
        self.endpoint = dialect.endpoint(self.method, judged.canonical)
        self.fetches_job = dialect.fetches_job(self.method, judged.text)

    def authenticate(self) -> None:
        """Which Tollgate key the client presented, if any; refused when managed mode needs one."""
        metering = self.metering
        token = self.dialect.client_key(self.headers, self._query)
        self._key = metering.keys.identify(token) if metering.keys else None
        if self._key is None and metering.managed_only:
            if token is None:
                raise Unauthorized(f"A Tollgate API key is required: send it as {self.dialect.key_hint}.")
            raise Unauthorized(
                "The Tollgate API key presented is not valid: check it, or make one with `tollgate keys new`."
            )
        self.managed = self._key is not None

    # 2. The body: what the request says about itself.

    def read(self, body: bytes) -> None:
        self.body = body
        if self.endpoint is None:
            model = None
            if body and header(self.headers, b"content-type").startswith(b"application/json"):
                model = self.dialect.model_of(_parse(body))
            self.facts = RequestFacts(model=_label(model or self.dialect.model_in_path(self.path)))
            return
        content_type = header(self.headers, b"content-type")
        if self.endpoint.form and content_type.lower().startswith(b"multipart/form-data"):
            self._read_form(body, content_type)
            return
        if content_type and not content_type.startswith(b"application/json"):
            raise UnsupportedMediaType(
                f"{self.path} takes a JSON body: send 'Content-Type: application/json', "
                f"not '{content_type.decode('latin-1')}'."
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSON(f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(payload, dict):
            raise InvalidJSON("The request body must be a JSON object.")
        facts = self.dialect.read_request(self.endpoint, payload)
        if facts.model is None:  # Gemini's and Azure's name it in the path
            facts = dataclasses.replace(facts, model=self.dialect.model_in_path(self.path))
        self._check_model(facts)
        self.facts, self.payload = facts, payload
        # A stream that would not report its usage is asked to; what that adds is hidden again (proxy.sse).
        self.body, self.hide_usage = self.dialect.with_usage_reporting(self.endpoint, body, payload)

    def _read_form(self, body: bytes, content_type: bytes) -> None:
        """A multipart form (audio, image edits): its fields read, its bytes forwarded as they came."""
        assert self.endpoint is not None
        boundary = boundary_of(content_type)
        if boundary is None:
            raise InvalidForm("The multipart/form-data Content-Type names no boundary.")
        try:
            form = read_form(body, boundary)
        except MultipartError as error:
            raise InvalidForm(f"The request body is not a valid multipart form: {error}.") from None
        facts = self.dialect.read_form(self.endpoint, form)
        if facts.model is None:  # Azure's names its deployment in the path
            facts = dataclasses.replace(facts, model=self.dialect.model_in_path(self.path))
        self._check_model(facts)
        self.facts, self.payload = facts, dict(form.fields)

    def _check_model(self, facts: RequestFacts) -> None:
        if facts.model is None:
            if facts.media is not None and facts.media.kind == VECTOR_SEARCH:
                return  # a vector store search names no model
            raise MissingModel("You must provide a model parameter.")
        problem = label_problem(facts.model)
        if problem is not None:
            raise ModelNotFound(f"No model is served by that name: it {problem}.")

    # 3. Attribute, route, and admit against the limits.

    async def admit(self, count: Count | None = None) -> None:
        """Attribute from the headers, route by the model, and reserve on the limits (or refuse).

        ``count`` reaches the provider's token count endpoint, for a request only a tighter bound admits.
        """
        metering = self.metering
        self.place(metering.attribution.read(self.headers, self.facts.user, self._key), self._route())
        if (metering.limits or metering.rates) and not self.reserve_now():
            await self.reserve(count)

    def _route(self) -> Provider:
        router, model, kind = self.metering.router, self.facts.model, self.dialect.kind
        provider = router.route(model, kind) if model else router.default_for(kind)
        if provider is None:
            of_kind = f" of kind '{kind}'" if kind != "openai" else ""  # every provider is, unless told otherwise
            if model:
                served = f"is not served by any provider{of_kind} configured in Tollgate"
                raise ModelNotFound(f"The model '{model}' {served}.")
            raise ModelNotFound(f"No provider{of_kind} is configured in Tollgate.")
        return provider

    def place(self, attribution: Attribution, provider: Provider) -> None:
        """Who the call is for and which provider answers it; refused if its row could not be recorded."""
        metering, model = self.metering, self.facts.model
        self.attribution = attribution
        self.key_name = attribution.key
        self.provider = provider
        if model is not None and provider.kind == "azure" and self.endpoint is not None:
            self._price_deployment(provider, model)
        if self.managed and provider.api_key is None:
            env = provider.api_key_env
            missing = f"set ${env} where Tollgate runs" if env else "set its api_key_env"
            raise ProviderKeyMissing(f"Provider '{provider.name}' has no API key in Tollgate: {missing}.")
        if not metering.recorder.can_record:
            raise RecordingUnavailable(
                "Tollgate cannot record usage right now (its journal cannot be written and its database is "
                "unreachable), so it forwards nothing; try again shortly."
            )

    def _price_deployment(self, provider: Provider, deployment: str) -> None:
        """An Azure deployment is priced by the model [providers.deployments] maps it to, else by the answer's."""
        self.priced_as = provider.deployments.get(deployment)
        warned = self.metering.unmapped_warned
        if self.priced_as is None and (provider.name, deployment) not in warned and len(warned) < 10_000:
            warned.add((provider.name, deployment))
            logger.warning(
                "provider %s: deployment %r has no [providers.deployments] entry; it is priced by the model its "
                "answers name, and a spend limit cannot bound it before it answers",
                provider.name,
                deployment,
            )

    def reserve_now(self) -> bool:
        """Reserve the request's largest possible cost on every limit it counts against, or refuse it.

        Done from the leases in hand, without waiting: False when one must first grow, which
        ``reserve`` does (on the budget keeper's own event loop).
        """
        metering = self.metering
        if metering.rates and not self._rates_checked and not self._hold_rates_now():
            return False
        if not metering.limits:
            return True
        counters = metering.limits.counters(self.attribution, self.started_at, self.facts.model)
        if not counters:
            return True
        bound, why = 0, "it carries no usage"
        bounded = self.facts.model or self.facts.media is not None  # a vector store search names no model
        if any(c.block_pico is not None for c in counters) and self.payload is not None and bounded:
            try:
                bound, why = self._bound()
            except CostUnbounded as error:
                scope = next(c for c in counters if c.block_pico is not None).scope
                raise CostUnbounded(error.message, scope=scope) from None
        # Near a limit (the bound a large share of what is left), the byte bound would hold budget that other
        # requests of a burst need: such a request takes the second look first, off the common path.
        near = bound > 0 and bound * NEAR_LIMIT_SHARE > metering.budget.least_room(counters)
        admission = None if near else metering.budget.admit_now(counters, bound)
        if admission is None:
            self._wanted = (counters, bound, why)
            self._near_limit = near
            return False
        self.admission = admission
        return True

    async def reserve(self, count: Count | None = None) -> None:
        """What ``reserve_now`` could not do: grow the leases from the database, then reserve (or refuse).

        A request the byte bound would refuse gets a tighter bound, or a clamp, first (``proxy.second_look``).
        """
        if self._rates_wanted is not None:
            rate_counters, tokens = self._rates_wanted
            self._rates_wanted = None
            assert self.metering.rate_keeper is not None
            try:
                self.rate_hold = await self.metering.rate_keeper.admit(rate_counters, tokens, self.dialect.kind)
            except TokenRateExceeded as refusal:
                self.rate_hold = await tighter_token_hold(self, rate_counters, tokens, refusal, count)
            if self.reserve_now():
                return
        assert self._wanted is not None
        counters, bound, why = self._wanted
        if self._near_limit:
            self.admission = await second_look(self, counters, bound, why, None, count)
            return
        try:
            self.admission = await self.metering.budget.admit(counters, bound, why)
        except SpendLimitExceeded as refusal:
            self.admission = await second_look(self, counters, bound, why, refusal, count)

    def _hold_rates_now(self) -> bool:
        """Hold room on every rate limit the request counts against, from the leases in hand; False if one must grow."""
        metering = self.metering
        self._rates_checked = True
        counters = metering.rates.counters(self.attribution, self.facts.model, self.started_at.timestamp())
        if not counters:
            return True
        tokens = 0
        if any(c.kind == TOKENS for c in counters) and self.endpoint is not None:
            model = self.priced_as or self.facts.model
            card = self.price_card(model) if model else None
            tokens = token_bound(card, len(self.body), self.facts, media_tokens=metering.media_tokens)
        assert metering.rate_keeper is not None
        hold = metering.rate_keeper.admit_now(counters, tokens)
        if hold is None:
            self._rates_wanted = (counters, tokens)
            return False
        self.rate_hold = hold
        return True

    @property
    def raw_path(self) -> str:
        """The path as the client sent it (after judging), which the provider's count endpoints sit beside."""
        return self._judged.raw if self._judged is not None else self.path

    def clamp(self, payload: dict[str, Any], facts: RequestFacts, clamped: str) -> None:
        """A spend limit lowered the output cap: the rewritten request is what goes upstream."""
        assert self.endpoint is not None
        self.payload, self.facts, self.clamped = payload, facts, clamped
        # Serialised again (the one body Tollgate rewrites whole); a stream still reports its usage.
        body, hidden = self.dialect.with_usage_reporting(self.endpoint, orjson.dumps(payload), payload)
        self.body, self.hide_usage = body, self.hide_usage or hidden

    def provider_count(self, upstream: Upstream) -> Count:
        """How to ask this call's provider for a token count: through ``upstream``, with the call's own headers."""

        async def count(request: CountRequest) -> bytes | None:
            provider = self.provider
            if provider is None:
                return None
            url = provider.url(request.path, self.dialect.upstream_query(self._query, self.managed))
            headers = [(k, v) for k, v in self.upstream_headers(provider) if k.lower() != "content-type"]
            headers.append(("content-type", "application/json"))
            try:
                response = await upstream.send(
                    "POST",
                    url,
                    headers,
                    request.body,
                    connect_timeout=provider.connect_timeout,
                    read_timeout=provider.connect_timeout,  # a count is quick; a slow one is not worth waiting for
                    retries=0,
                    retry_max_seconds=0,
                )
                body = await response.read()
            except TollgateError as exc:
                logger.info("token count at provider %s failed: %s", provider.name, exc.message)
                return None
            return body if response.status == 200 else None

        return count

    def _bound(self) -> tuple[int, str]:
        """The request's cost bound: the dearest over every price version that may price its row.

        Usually that is the version in force at its start alone; a version already imported to take effect
        later could price a background job completed after it (see ``PriceHistory.may_price``).
        """
        catalogs = self.prices.may_price(self.started_at)
        if len(catalogs) == 1:
            return self._bound_with(catalogs[0])
        return max((self._bound_with(catalog) for catalog in catalogs), key=lambda bound: bound[0])

    def _bound_with(self, catalog: Catalog) -> tuple[int, str]:
        """The request's cost bound with ``catalog``, over every model that may answer it (``proxy.limits.bounds``)."""
        assert self.endpoint is not None and self.provider is not None
        metering, facts, model = self.metering, self.facts, self.priced_as or self.facts.model
        if facts.media is not None:
            return media_bound(
                lambda name: self.price_card(name, catalog), model, facts, len(self.body), metering.tool_prices
            )
        assert model is not None
        # A provider may answer with another model than asked for: a router's fallbacks, the provider's
        # configured bound_models, or a substitution seen before. The bound covers them all.
        names = [*facts.fallback_models, *self.provider.bound_models]
        candidates = [(name, self.price_card(name, catalog)) for name in names]
        candidates += [(card.model, card) for card in metering.substitutes.get((self.provider.name, model), ())]
        requested = self.price_card(model, catalog)
        if requested is not None or not candidates:
            candidates.append((model, requested))
        embeddings = self.endpoint.embeddings
        cards: dict[str, PriceCard] = {}
        for name, card in candidates:
            if card is None:  # a model that may answer has no price: nothing bounds the request
                unpriced = RequestFacts(model=name)
                return request_bound(None, len(self.body), unpriced, embeddings=embeddings, media_tokens=0)
            cards[card.model] = card
        bounds = [
            _with_fees(
                request_bound(card, len(self.body), facts, embeddings=embeddings, media_tokens=metering.media_tokens),
                tool_fee_bound(
                    card, facts, metering.tool_prices, lambda name: self.price_card(name, catalog), self.provider.kind
                ),
            )
            for card in cards.values()
        ]
        return max(bounds, key=lambda bound: bound[0])

    # 4. Forward.

    def upstream_request(self) -> UpstreamRequest:
        """What goes upstream: the raw path under the provider's base URL, the headers, the (prepared) body."""
        assert self._judged is not None and self.provider is not None
        provider = self.provider
        query = self.dialect.upstream_query(self._query, self.managed)
        url = provider.url(self.dialect.upstream_path(self._judged.raw), query)
        return UpstreamRequest(self.method, url, self.upstream_headers(provider), self.body)

    async def forward(self, upstream: Upstream) -> UpstreamResponse:
        assert self.provider is not None
        request, provider = self.upstream_request(), self.provider
        return await upstream.send(
            request.method,
            request.url,
            request.headers,
            request.body,
            connect_timeout=provider.connect_timeout,
            read_timeout=provider.read_timeout,
            retries=provider.retries,
            retry_max_seconds=provider.retry_max_seconds,
        )

    def upstream_headers(self, provider: Provider) -> list[tuple[str, str]]:
        """The client's headers as they go upstream: hop-by-hop and attribution headers gone, keys placed."""
        self.forwarded = True  # both front doors build the upstream headers just before sending
        reader, managed, metered = self.metering.attribution, self.managed, self.metered
        key_headers = self.dialect.key_headers
        out: list[tuple[str, str]] = []
        for name, value in self.headers:
            if name in HOP_BY_HOP:
                continue
            if managed and name in key_headers:
                continue
            if metered and name == b"accept-encoding":
                continue
            if reader.strip and reader.is_attribution_header(name):
                continue
            out.append((name.decode("latin-1"), value.decode("latin-1")))
        if managed and provider.api_key is not None:
            out.append(self.dialect.provider_key_header(provider.api_key))
        if metered:
            # Usage is read from the body as it passes, so it should arrive uncompressed (proxy.encoding reads
            # it anyway if the provider compresses).
            out.append(("accept-encoding", "identity"))
        out.extend(provider.extra_headers)
        return out

    # 5. Relay while reading the usage.

    def answer(self, status: int, headers: Headers, body: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
        """A whole answer: read its usage and record it; (the headers to send, whether the row is on disk).

        Recorded before the answer goes out, so that a client that has its answer has its row, and its
        headers can say what it cost and what the limit leaves once it is settled.
        """
        self.ttfb = time.perf_counter() - self.started
        usage, estimated = None, False
        deferred: Deferred | None = None
        readable = decoded(body, headers) if status < 400 else None  # the client still gets the bytes as they came
        if self.endpoint is not None and status < 400:
            if readable is not None:
                usage, estimated = self.dialect.usage_from_answer(self.endpoint, self.facts, readable)
            job = self.dialect.queued_job(readable) if usage is None and readable is not None else None
            if job is not None:  # a background job: its usage comes when its result is fetched
                keys = tuple(counter.key for counter in self.admission.counters)
                deferred = Queued(job, self.request_id, self.admission.bound, keys)
            elif usage is None:
                tokens = estimate(self.dialect.prompt_text(self.payload), self.dialect.answer_text(readable or b""))
                usage, estimated = Usage(tokens=tokens, model=self.facts.model), True
        elif status < 300 and readable is not None and self.method == "POST" and self._judged is not None:
            self.created = self.dialect.created_object(self.method, self._judged.canonical, readable)
        if self.endpoint is None and self.fetches_job is not None and status == 200 and readable is not None:
            if self.dialect.finished_job(readable):
                deferred = settlement.finished(self, self.fetches_job, self.dialect.usage_from_body(readable))
        durable = settlement.record(self, status, usage, None, estimated=estimated, deferred=deferred)
        out = self.response_headers(headers, self.metering.budget.remaining(self.admission), streamed=False)
        cost_pico = self.cost[0] if self.cost is not None else None
        if cost_pico is not None and self.metering.cost_header:
            out.append((b"x-tollgate-cost-usd", decimal_text(pico_to_usd(cost_pico)).encode()))
        return out, durable

    def stream(self, headers: Headers) -> tuple[StreamMeter, Any, list[tuple[bytes, bytes]]]:
        """A stream's meter, the decoder its chunks go through (None if uncompressed), and its headers."""
        reader = self.dialect.stream_reader(self.hide_usage)
        meter = StreamMeter(reader, hide_usage=self.hide_usage, json_array=not is_event_stream(headers))
        # A stream the provider compressed anyway is read through a decoder. The client gets the provider's
        # bytes, unless Tollgate hides usage in it: that needs the events, so the client then gets them decoded.
        coding = content_encoding(headers)
        decoder = decoder_for(coding) if coding is not None else None
        if coding is not None and decoder is None:
            meter.sse = False  # unreadable: relayed as it is, and estimated
        out = self.response_headers(headers, self.admission.remaining_pico, streamed=True)
        if decoder is not None and self.hide_usage:
            out = [(name, value) for name, value in out if name != b"content-encoding"]
        return meter, decoder, out

    def streams(self, status: int, headers: Headers) -> bool:
        """Whether the answer is relayed as it arrives: an event stream, or a JSON array its dialect streams."""
        if is_event_stream(headers):
            return True
        return status < 400 and self.endpoint is not None and self.dialect.streams_json(self.endpoint)

    def end_stream(self, status: int, meter: StreamMeter, error: str | None) -> bool:
        """The stream is over (or cut short): record it; whether the row is on disk."""
        if self.fetches_job is not None and meter.usage is not None:  # a streamed fetch of a job's result
            return settlement.record(
                self, status, None, error, deferred=settlement.finished(self, self.fetches_job, meter.usage)
            )
        usage, estimated = meter.usage, False
        # No usage from a stream that was answered (even one that hung before its first event): estimated,
        # never recorded as free.
        if usage is None and self.endpoint is not None and status < 400:
            received = meter.received
            prompt = self.dialect.prompt_text(self.payload)
            tokens = estimate(prompt, meter.streamed_text(), received.kept, received.total)
            usage, estimated = Usage(tokens=tokens, model=self.facts.model), True
        return settlement.record(self, status, usage, error, estimated=estimated)

    def response_headers(self, headers: Headers, remaining: int | None, *, streamed: bool) -> list[tuple[bytes, bytes]]:
        hidden = self.dialect.account_headers if self.managed else frozenset()
        out = [
            (name, value)
            for name, value in headers
            if (name not in HOP_BY_HOP or (name == b"content-length" and not streamed))
            and name not in NEVER_RELAYED
            and name not in hidden
        ]
        out.append((b"x-tollgate-request-id", self.request_id.encode()))
        if remaining is not None:
            out.append((b"x-tollgate-limit-remaining-usd", decimal_text(pico_to_usd(max(remaining, 0))).encode()))
        if self.clamped is not None:
            out.append((b"x-tollgate-clamped", self.clamped.encode()))
        return out

    def refuse(self, error: TollgateError) -> tuple[Refusal, bool]:
        """Tollgate answers the request itself: the refusal, recorded; (it, whether the row is on disk)."""
        metering = self.metering
        if isinstance(error, (SpendLimitExceeded, RateLimitExceeded, LimitsUnavailable, CostUnbounded)):
            metering.metrics.observe_refusal(scope=error.scope or "", code=error.code or "")
        if not self.forwarded and metering.rate_keeper is not None:
            metering.rate_keeper.release(self.rate_hold)  # never sent: it takes no room on a rate limit
            self.rate_hold = NO_HOLD
        headers = [
            (b"content-type", b"application/json"),
            (b"x-tollgate-request-id", self.request_id.encode()),
            *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
        ]
        durable = settlement.record(self, error.status, None, error.code or error.type)
        return Refusal(error.status, headers, self.dialect.error_body(error)), durable

    # 6. Price, settle and record (proxy.settlement).

    def price_card(self, model: str, catalog: Catalog | None = None) -> PriceCard | None:
        """The card that prices ``model`` at this request's provider (see ``pricing.lookup_for_kind``).

        From the call's own catalog (the version in force at its start) unless another is given.
        """
        kind = self.provider.kind if self.provider is not None else self.dialect.kind
        return lookup_for_kind(self.catalog if catalog is None else catalog, model, kind)


def _with_fees(bound: tuple[int, str], fees: tuple[int, str]) -> tuple[int, str]:
    """A token bound with what hosted tools may add in per-call fees (``proxy.limits.tool_bounds``)."""
    return (bound[0] + fees[0], f"{bound[1]}, plus {fees[1]}") if fees[0] else bound


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _label(model: str | None) -> str | None:
    return model if model is not None and label_problem(model) is None else None
