"""Errors that Tollgate answers itself, rendered in OpenAI's error shape.

Every error a client can get from Tollgate (as opposed to an error the provider
returned, which passes through untouched) is one of these::

    TollgateError                      500 server_error
    ├── BadRequest                     400 invalid_request_error
    │   ├── InvalidJSON                400   code=invalid_json
    │   ├── MissingModel               400   param=model, code=missing_required_parameter
    │   ├── UnknownParameter           400   code=unknown_parameter (an admin query parameter)
    │   └── CostUnbounded              400   code=cost_unbounded (a spend limit cannot admit it)
    ├── Unauthorized                   401 invalid_request_error, code=invalid_api_key
    ├── NotFound                       404 invalid_request_error, code=not_found
    │   └── ModelNotFound              404   param=model, code=model_not_found
    ├── PayloadTooLarge                413 invalid_request_error, code=request_too_large
    ├── SpendLimitExceeded             429 insufficient_quota, code=spend_limit_exceeded
    ├── RateLimitExceeded              429 requests, code=rate_limit_exceeded (retryable)
    │   └── TokenRateExceeded          429   type=tokens
    ├── UnsupportedMediaType           415 invalid_request_error, code=unsupported_media_type
    ├── UpstreamUnavailable            502 api_error, code=upstream_unavailable
    ├── LimitsUnavailable              503 api_error, code=limits_unavailable
    ├── ProviderKeyMissing             503 api_error, code=provider_key_missing
    ├── RecordingUnavailable           503 api_error, code=recording_unavailable
    └── UpstreamTimeout                504 api_error, code=upstream_timeout

``render_error`` is the one place that turns an error into a response body.
"""

from __future__ import annotations

from typing import ClassVar

import orjson


class TollgateError(Exception):
    """An error Tollgate answers on its own, with an OpenAI-style body."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None
    param: ClassVar[str | None] = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, scope: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.scope = scope  # the limit scope, for refusals by spend limits


class BadRequest(TollgateError):
    status = 400
    type = "invalid_request_error"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class InvalidForm(BadRequest):
    code = "invalid_multipart"


class UnknownParameter(BadRequest):
    code = "unknown_parameter"


class MissingModel(BadRequest):
    param = "model"
    code = "missing_required_parameter"


class CostUnbounded(BadRequest):
    """A blocking spend limit applies, and nothing bounds what the request could cost."""

    code = "cost_unbounded"

    def __init__(self, message: str, *, scope: str | None = None) -> None:
        super().__init__(message, headers={"x-should-retry": "false"}, scope=scope)


class Unauthorized(TollgateError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(TollgateError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    param = "model"
    code = "model_not_found"


class PayloadTooLarge(TollgateError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(TollgateError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class SpendLimitExceeded(TollgateError):
    """A blocking spend limit leaves no room for the request's largest possible cost."""

    status = 429
    type = "insufficient_quota"
    code = "spend_limit_exceeded"


class RateLimitExceeded(TollgateError):
    """A rate limit (requests per minute, requests in flight) has no room now; retrying later can succeed.

    ``headers`` carry the dialect's rate-limit headers (``proxy.limits.rate_refusal``); OpenAI's SDKs
    back off and retry a 429 unless ``x-should-retry: false`` says otherwise.
    """

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class TokenRateExceeded(RateLimitExceeded):
    """A tokens-per-minute limit has no room for the request's token bound."""

    type = "tokens"


class LimitsUnavailable(TollgateError):
    status = 503
    type = "api_error"
    code = "limits_unavailable"


class ProviderKeyMissing(TollgateError):
    """A managed key's request cannot go upstream: Tollgate has no key for the provider. Retrying cannot help."""

    status = 503
    type = "api_error"
    code = "provider_key_missing"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"x-should-retry": "false"})


class RecordingUnavailable(TollgateError):
    """Neither the journal nor the database can take a record: a request would be billed and lost."""

    status = 503
    type = "api_error"
    code = "recording_unavailable"


class UpstreamUnavailable(TollgateError):
    status = 502
    type = "api_error"
    code = "upstream_unavailable"


class UpstreamTimeout(TollgateError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"


def render_error(error: TollgateError) -> bytes:
    """The JSON body for ``error``: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
    )
