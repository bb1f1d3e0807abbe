"""Provider kinds: one line each, naming the adapter class and what the kind needs.

The adapter module is imported only when a configured provider uses the kind, so a kind's
dependencies cost nothing to a gateway that does not use it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from spillgate.fallback.adapter import ProviderAdapter, ProviderSettings


@dataclass(frozen=True)
class ProviderKind:
    #: "module:Class" of the `ProviderAdapter`; the class takes a `ProviderSettings`.
    adapter: str
    #: The table of fallback/prices.json that prices this kind's models (None: config only).
    price_family: str | None = None
    #: Used when the provider entry sets no `base_url`.
    default_base_url: str | None = None
    #: Keys `providers[].options` must set.
    required_options: tuple[str, ...] = ()


_AT = "spillgate.fallback"

KINDS: dict[str, ProviderKind] = {
    "openai": ProviderKind(
        f"{_AT}.openai.adapter:OpenAIAdapter", "openai", "https://api.openai.com/v1"
    ),
    "azure": ProviderKind(
        f"{_AT}.openai.adapter:AzureOpenAIAdapter", "openai", None, ("api_version",)
    ),
    "mistral": ProviderKind(
        f"{_AT}.mistral.adapter:MistralAdapter", "mistral", "https://api.mistral.ai/v1"
    ),
    "openai-compatible": ProviderKind(f"{_AT}.openai.adapter:OpenAIAdapter"),
    "anthropic": ProviderKind(
        f"{_AT}.anthropic.adapter:AnthropicAdapter", "anthropic", "https://api.anthropic.com"
    ),
    "gemini": ProviderKind(
        f"{_AT}.gemini.adapter:GeminiAdapter", "gemini", "https://generativelanguage.googleapis.com"
    ),
}


def available(kind: str) -> bool:
    """The kind is known and its adapter module is installed (found without importing it)."""
    spec = KINDS.get(kind)
    if spec is None:
        return False
    module = spec.adapter.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def create_adapter(settings: ProviderSettings) -> ProviderAdapter:
    module, _, name = KINDS[settings.kind].adapter.partition(":")
    adapter_class = getattr(importlib.import_module(module), name)
    adapter: ProviderAdapter = adapter_class(settings)
    return adapter
