"""Kind `gemini`: the Google AI Gemini API (`generateContent`, `streamGenerateContent`).

Settings: `base_url` is the API root (https://generativelanguage.googleapis.com);
`options.api_version` picks the path version (default v1beta); `drop_params` lists OpenAI
fields to drop silently instead of answering 400. The key goes
in the `x-goog-api-key` header, never in the URL, so it cannot reach an access log.

Modules, as in every kind's package: `adapter`, `request` (OpenAI request → Gemini body),
`response` (a whole answer → chat.completion), `stream` (SSE chunks → chunks), `errors`
(google.rpc error answers → UpstreamError); and Gemini's own `schema` (JSON Schema → its
schema subset) and `ids` (tool-call ids that carry the thought signature).
"""
