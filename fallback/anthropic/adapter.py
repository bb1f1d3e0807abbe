"""The Anthropic adapter: the Messages URL, its headers, and the translators wired up."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import ProviderCall, ProviderSettings, Translated
from spillgate.fallback.anthropic.errors import error_from_body
from spillgate.fallback.anthropic.native import NativeStream, native_answer, native_body
from spillgate.fallback.anthropic.request import DEFAULT_MAX_TOKENS, translate_request
from spillgate.fallback.anthropic.response import Envelope, translate_message
from spillgate.fallback.anthropic.stream import AnthropicStreamTranslator
from spillgate.fallback.wire import answer_object, require_endpoint
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.sse import client_wants_usage

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicAdapter:
    """Pure translation between OpenAI chat completions and Anthropic messages; Messages
    requests pass through as they are (see `native`)."""

    #: Messages requests are Anthropic's own API: sent as they are. Responses requests are
    #: sent as chat (see fallback/dialects).
    native: frozenset[Endpoint] = frozenset({Endpoint.MESSAGES})

    def __init__(
        self, settings: ProviderSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self._clock = clock
        base = settings.base_url.rstrip("/")
        self._url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        self._default_max_tokens = int(
            settings.options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
        )
        self._headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if settings.api_key:
            self._headers["x-api-key"] = settings.api_key
        self._headers.update(settings.headers)

    def build(self, request: UpstreamRequest) -> ProviderCall:
        require_endpoint(self.settings, request.endpoint, (Endpoint.CHAT, Endpoint.MESSAGES))
        if request.endpoint is Endpoint.MESSAGES:
            body = native_body(request.payload, request.target_model, self.settings.drop_params)
            return ProviderCall(url=self._url, headers=dict(self._headers), body=orjson.dumps(body))
        translated = translate_request(
            request.payload,
            request.target_model,
            stream=request.stream,
            provider=self.settings.name,
            default_max_tokens=self._default_max_tokens,
            drop_params=self.settings.drop_params,
        )
        return ProviderCall(
            url=self._url, headers=dict(self._headers), body=orjson.dumps(translated.body)
        )

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        if request.endpoint is Endpoint.MESSAGES:
            return native_answer(self.settings.name, body)
        message = answer_object(self.settings.name, body)
        completion, usage = translate_message(message, self._envelope(request), self.settings.name)
        return Translated(body=orjson.dumps(completion), usage=usage)

    def stream(self, request: UpstreamRequest) -> AnthropicStreamTranslator | NativeStream:
        if request.endpoint is Endpoint.MESSAGES:
            return NativeStream(self.settings.name)
        return AnthropicStreamTranslator(
            self._envelope(request),
            include_usage=client_wants_usage(request.payload),
            settings=self.settings,
        )

    def error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return error_from_body(status, body, headers, self.settings, self._clock())

    def _envelope(self, request: UpstreamRequest) -> Envelope:
        # The client asked for `request.model`; answering with it keeps the spill invisible.
        return Envelope(
            id=f"chatcmpl-{request.request_id}", created=int(self._clock()), model=request.model
        )
