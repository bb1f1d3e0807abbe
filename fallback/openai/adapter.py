"""The OpenAI-family adapters: where a request goes and with which key header."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import ProviderCall, ProviderSettings, Translated
from spillgate.fallback.openai.errors import provider_error
from spillgate.fallback.openai.request import openai_payload
from spillgate.fallback.openai.response import parse_answer
from spillgate.fallback.openai.responses_stream import ResponsesPassThrough
from spillgate.fallback.openai.stream import OpenAIStream
from spillgate.protocol import Endpoint, UpstreamRequest, Usage
from spillgate.sse import client_wants_usage

_JSON = "application/json"


class OpenAIAdapter:
    """Kinds `openai` and `openai-compatible` (Groq, Together, OpenRouter, DeepSeek, vLLM...)."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        #: OpenAI's own API serves Responses requests as they are; the compatible providers
        #: (and Azure, whose Responses endpoint needs an API version of its own) get them as
        #: chat, and every kind here gets Messages requests as chat (see fallback/dialects).
        self.native: frozenset[Endpoint] = (
            frozenset({Endpoint.RESPONSES}) if settings.kind == "openai" else frozenset()
        )

    # -- out --------------------------------------------------------------------------------

    def build(self, request: UpstreamRequest) -> ProviderCall:
        payload = openai_payload(request, self.settings.drop_params)
        return ProviderCall(self.url(request), self.headers(), orjson.dumps(payload))

    def url(self, request: UpstreamRequest) -> str:
        return f"{self.base_url}/{request.endpoint.value}"

    def headers(self) -> dict[str, str]:
        headers = {"content-type": _JSON, "accept": _JSON, **self.settings.headers}
        if self.settings.api_key:
            headers["authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    # -- back -------------------------------------------------------------------------------

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        answer = parse_answer(self.settings.name, request.endpoint, body)
        if request.endpoint is Endpoint.RESPONSES:
            return Translated(body, Usage.from_responses(answer.get("usage")))
        return Translated(body, Usage.from_openai(answer.get("usage")))

    def stream(self, request: UpstreamRequest) -> OpenAIStream | ResponsesPassThrough:
        if request.endpoint is Endpoint.RESPONSES:
            return ResponsesPassThrough(self.settings.name)
        return OpenAIStream(self.settings, client_wants_usage(request.payload))

    def error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return provider_error(self.settings, status, body, headers)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: the model is a deployment in the URL, `api-version` a query parameter,
    the key goes in `api-key`. Its streams open with a choiceless `prompt_filter_results`
    chunk, which OpenAI never sends; OpenAIStream leaves it out."""

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        version = settings.options.get("api_version")
        if version is None or not str(version).strip():
            raise ValueError(
                f"`options.api_version` is required for kind 'azure' (provider "
                f'{settings.name!r}): the `api-version` Azure OpenAI expects, e.g. "2024-10-21"'
            )
        self._version = quote(str(version).strip(), safe="")

    def url(self, request: UpstreamRequest) -> str:
        deployment = quote(request.target_model, safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}/{request.endpoint.value}"
            f"?api-version={self._version}"
        )

    def headers(self) -> dict[str, str]:
        headers = {"content-type": _JSON, "accept": _JSON, **self.settings.headers}
        if self.settings.api_key:
            headers["api-key"] = self.settings.api_key
        return headers
