"""Kind `mistral`: Mistral's chat completions, OpenAI's shape with its own names and limits.

Out: `seed` is `random_seed`, `max_completion_tokens` is `max_tokens`, tool_choice
`required` is `any`, a `developer` message is a `system` one, and tool-call ids must be
nine letters or digits (ids minted elsewhere are mapped, the same id always to the same
value). Mistral rejects fields it does not know, so every other OpenAI parameter is
checked here and refused with a 400 unless the provider's `drop_params` lists it.
Back: `model_length` is `length`, content given as chunks is joined into text, streamed
tool calls get the `index` OpenAI clients need, and the usage Mistral puts on its last
chunk becomes OpenAI's separate usage chunk when the client asked for it.

Modules, as in every kind's package: `adapter`, `request`, `response`, `stream`; its error
answers are the OpenAI family's, mapped by `spillgate.fallback.openai.errors`.
"""
