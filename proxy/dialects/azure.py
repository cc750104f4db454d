"""Azure OpenAI: OpenAI's wire format under Azure's paths, keys and deployments.

Metered, with ``?api-version=...`` kept as sent: ``POST /openai/deployments/{deployment}/``
``chat/completions``, ``completions``, ``embeddings`` and ``responses``, and the same under Azure's
v1 API, ``/openai/v1/...`` (whose body names the deployment as its ``model``). Every other
``/openai/...`` path is forwarded and recorded with no tokens. Providers' ``base_url`` is the
resource's root, ``https://RESOURCE.openai.azure.com``: the path goes as it came.

The key comes in ``api-key`` (or ``Authorization: Bearer``). Usage reads as OpenAI's. Azure's
streams open with a chunk of empty ``choices`` and ``prompt_filter_results``: it carries no usage,
and reaches the client like any other chunk (only the usage-only chunk Tollgate asked for is hidden).
A deployment is priced by the model ``[providers.deployments]`` maps it to, else by the model the
answer names (see ``proxy.core``).
"""

from __future__ import annotations

from proxy.dialects.base import Endpoint, Headers
from proxy.dialects.openai import ENDPOINTS, OpenAI
from proxy.keys import bearer_token

_ROOT = "/openai/"
_DEPLOYMENTS = "/openai/deployments/"
_V1 = "/openai/v1/"


class Azure(OpenAI):
    kind = "azure"
    sdk_base_url = None  # AzureOpenAI takes azure_endpoint in code (see the README)
    key_header = b"api-key"
    key_hint = "'api-key: <key>' (or 'Authorization: Bearer <key>')"
    key_headers = frozenset({b"api-key", b"authorization"})
    account_headers = frozenset({b"apim-request-id", b"x-ms-region", b"azureml-model-session"})

    def serves(self, canonical_path: str) -> bool:
        return canonical_path.startswith(_ROOT)

    def claims(self, method: str, canonical_path: str, headers: Headers) -> bool:
        return canonical_path.startswith(_ROOT)

    def client_key(self, headers: Headers, query: bytes) -> str | None:
        bearer: str | None = None
        for name, value in headers:
            if name == b"api-key":
                return value.strip().decode("latin-1") or None
            if name == b"authorization":
                bearer = bearer_token(value)
        return bearer

    def provider_key_header(self, api_key: str) -> tuple[str, str]:
        return "api-key", api_key

    def endpoint(self, method: str, canonical_path: str) -> Endpoint | None:
        openai_path = _as_openai_path(canonical_path)
        return ENDPOINTS.get(openai_path) if method == "POST" and openai_path is not None else None

    def upstream_path(self, raw_path: str) -> str:
        return raw_path  # base_url is the resource's root

    def model_in_path(self, path: str) -> str | None:
        if not path.startswith(_DEPLOYMENTS):
            return None
        deployment = path[len(_DEPLOYMENTS) :].split("/", 1)[0]
        return deployment or None

    def fetches_job(self, method: str, path: str) -> str | None:
        openai_path = _as_openai_path(path)
        return super().fetches_job(method, openai_path) if openai_path is not None else None


def _as_openai_path(path: str) -> str | None:
    """``/openai/deployments/{d}/chat/completions`` or ``/openai/v1/chat/completions`` as OpenAI's ``/v1/...``."""
    if path.startswith(_V1):
        return path[7:]  # keeps "/v1/..."
    if path.startswith(_DEPLOYMENTS):
        _, slash, rest = path[len(_DEPLOYMENTS) :].partition("/")
        return "/v1/" + rest if slash else None
    return None
