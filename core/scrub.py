"""What error text may carry out of the gateway: never a secret it holds, and of an upstream
error body only its human message, without the request quoted back.

Every secret is remembered where it is configured or made (provider keys, the launched
engines' keys, tokens, database passwords); `scrub` is applied where text leaves: error
answers, stream error events, log lines and span statuses. Upstream error bodies are read
through `error_message`, which keeps the message and cuts pydantic's quotes of the input
(`input_value=...`, `'input': ...`: the client's prompt).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

REDACTED = "[redacted]"
#: Shorter values are no keys, and replacing them would garble every line.
MIN_SECRET_CHARS = 8
#: How much of an upstream's message is passed on.
MESSAGE_LIMIT = 500

# A quoted request value runs to the end of its line: pydantic prints one error a line.
_QUOTED_INPUT = re.compile(r"""(input_value=|['"]input['"]:\s*).*""")

_secrets: tuple[str, ...] = ()


def remember(secret: str | None) -> None:
    """Scrub `secret` from every text that leaves from now on."""
    global _secrets
    if secret and len(secret) >= MIN_SECRET_CHARS and secret not in _secrets:
        # Longest first: a secret that contains another is replaced whole.
        _secrets = tuple(sorted((*_secrets, secret), key=len, reverse=True))


def holds_secret(value: str) -> bool:
    """Whether `value` carries a secret the gateway holds (an inherited environment variable)."""
    return any(secret in value for secret in _secrets)


def scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub_bytes(data: bytes) -> bytes:
    """`scrub` for a body passed on as bytes (an engine's error answer)."""
    for secret in _secrets:
        encoded = secret.encode()
        if encoded in data:
            data = data.replace(encoded, REDACTED.encode())
    return data


def error_message(body: bytes) -> str | None:
    """The human message of an upstream error body, fit to pass on; None when it has none."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return message_of(parsed)


def message_of(parsed: Any) -> str | None:
    """The message of the error shapes OpenAI, Azure, Mistral, vLLM and FastAPI servers use."""
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("error")
    source = error if isinstance(error, dict) else parsed
    message: Any = source.get("message")
    if message is None and isinstance(error, str):
        message = error
    if isinstance(message, dict):  # Mistral's 422: {"message": {"detail": [...]}}
        message = message.get("detail")
    if message is None:
        message = parsed.get("detail")
    if isinstance(message, list):  # pydantic-style details: keep the location and the reason
        message = "; ".join(_detail_line(item) for item in message[:5])
    if not isinstance(message, str) or not message:
        return None
    return safe_detail(message)


def safe_detail(message: str) -> str:
    """An upstream's own words cut short, without quoted input, without known secrets."""
    return scrub(_QUOTED_INPUT.sub(r"\1[omitted]", message))[:MESSAGE_LIMIT]


def _detail_line(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
    return f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", ""))
