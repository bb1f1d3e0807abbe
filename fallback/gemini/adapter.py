"""The Gemini adapter: the model URL per call, its headers, and the translators wired up."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import ProviderCall, ProviderSettings, Translated
from spillgate.fallback.gemini.errors import upstream_error
from spillgate.fallback.gemini.request import RequestBuilder
from spillgate.fallback.gemini.response import whole_answer
from spillgate.fallback.gemini.stream import GeminiStream
from spillgate.fallback.wire import require_endpoint
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.sse import client_wants_usage


class GeminiAdapter:
    #: Responses and Messages requests are sent as chat (see fallback/dialects).
    native: frozenset[Endpoint] = frozenset()

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        root = settings.base_url.rstrip("/")
        version = str(settings.options.get("api_version", "v1beta")).strip("/")
        self._models_url = f"{root}/{version}/models/"
        self._builder = RequestBuilder(settings.name, settings.drop_params)
        self._headers = {**settings.headers, "content-type": "application/json"}
        if settings.api_key:
            self._headers["x-goog-api-key"] = settings.api_key

    def build(self, request: UpstreamRequest) -> ProviderCall:
        require_endpoint(self.settings, request.endpoint)
        body = self._builder.body(request.payload)
        model = quote(request.target_model.removeprefix("models/"), safe="")
        action = ":streamGenerateContent?alt=sse" if request.stream else ":generateContent"
        return ProviderCall(
            url=self._models_url + model + action,
            headers=dict(self._headers),
            body=orjson.dumps(body),
        )

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        answer, usage = whole_answer(body, request.model, self.settings.name)
        return Translated(body=answer, usage=usage)

    def stream(self, request: UpstreamRequest) -> GeminiStream:
        return GeminiStream(
            request.model,
            client_wants_usage(request.payload),
            self.settings.name,
            lambda status, body: self.error(status, body, {}),
        )

    def error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return upstream_error(self.settings, status, body, headers)
