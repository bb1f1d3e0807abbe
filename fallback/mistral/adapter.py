"""The Mistral adapter: OpenAI's URL and headers, Mistral's request and answer fixes."""

from __future__ import annotations

import orjson

from spillgate.fallback.adapter import ProviderCall, ProviderSettings, Translated
from spillgate.fallback.mistral.request import RequestBuilder
from spillgate.fallback.mistral.response import whole_answer
from spillgate.fallback.mistral.stream import MistralStream
from spillgate.fallback.openai.adapter import OpenAIAdapter
from spillgate.fallback.wire import require_endpoint
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.sse import client_wants_usage


class MistralAdapter(OpenAIAdapter):
    #: Responses and Messages requests are sent as chat (see fallback/dialects).
    native: frozenset[Endpoint] = frozenset()

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._request = RequestBuilder(settings.name, settings.drop_params)

    def build(self, request: UpstreamRequest) -> ProviderCall:
        require_endpoint(self.settings, request.endpoint)
        payload = self._request.body({**request.payload, "model": request.target_model})
        return ProviderCall(self.url(request), self.headers(), orjson.dumps(payload))

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        return whole_answer(self.settings.name, request.endpoint, body)

    def stream(self, request: UpstreamRequest) -> MistralStream:
        return MistralStream(self.settings, client_wants_usage(request.payload))
