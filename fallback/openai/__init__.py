"""Kinds `openai`, `azure` and `openai-compatible`: OpenAI's own API, Azure OpenAI, and
every OpenAI-compatible provider (Groq, Together, OpenRouter, DeepSeek, a remote vLLM...).

The client already speaks this format, so the request goes out as sent with three changes:
the provider's model name, the parameters config says to drop, and
`stream_options.include_usage` (Spillgate needs the usage to price the call; the usage
chunk is removed again when the client did not ask for it). Answers pass through as the
provider's bytes; streams are cut into events and checked, so a malformed or error event
becomes an error the executor can act on instead of garbage at the client.

Azure lives here, not in a package of its own: it speaks OpenAI's wire byte for byte and
differs only in its URL and key header, two methods of `AzureOpenAIAdapter`. Mistral
speaks a dialect of it and has its own package, built on these modules.

Modules, as in every kind's package: `adapter` (URLs, headers, wiring), `request` (the
OpenAI request as sent, with the changes above), `response` (a whole answer, checked),
`stream` (events checked and passed on), `errors` (error answers -> UpstreamError).
Kind `openai` also takes Responses API requests as they are (model name and drop_params
changed only), its answers and events passed on as sent (`responses_stream` watches a
stream for its usage and its end); the other kinds here get them as chat.
"""
