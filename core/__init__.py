"""Spillgate: one OpenAI-compatible endpoint over local vLLM engines and cloud providers.

This root package is the small shared vocabulary that `spillgate.models` (local engines) and
`spillgate.fallback` (cloud providers) may both import; `spillgate.server` composes them.
"""

__version__ = "0.1.0"
