"""Kind `anthropic`: Anthropic's Messages API behind the OpenAI chat surface, and behind
the gateway's own /v1/messages as it is.

Settings: `base_url` (`https://api.anthropic.com`, with or without `/v1`), `api_key` (sent
as `x-api-key`), `headers` (added to every call, e.g. `anthropic-beta`), `drop_params`
(OpenAI parameters Anthropic lacks that are ignored instead of refused) and
`options.default_max_tokens` (sent when the client gives no `max_tokens`; Anthropic
requires one).

Modules, as in every kind's package: `adapter` (URL, headers, wiring), `request` (OpenAI
request -> Messages body), `response` (a whole message -> chat.completion), `stream`
(Messages events -> chunks), `errors` (error answers and events -> UpstreamError), and
`native` (a /v1/messages request passed through, its usage read on the way).
"""
