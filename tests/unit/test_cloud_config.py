"""`providers:` and `routes:` in the configuration: what is accepted, errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spillgate.fallback.anthropic.adapter import AnthropicAdapter
from spillgate.fallback.gemini.adapter import GeminiAdapter
from spillgate.fallback.registry import create_adapter
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.server.config import ConfigError, from_dict, load
from spillgate.server.gateway import provider_settings

KEY = "sk-config-test-0123456789"


def _config(**extra: Any) -> dict[str, Any]:
    provider = {"name": "oai", "kind": "openai", "api_key": KEY, "models": ["gpt-4o-mini"]}
    return {"providers": [provider], "routes": {"smart": ["oai/gpt-4o-mini"]}, **extra}


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        from_dict(data)
    return str(caught.value)


def test_a_provider_gets_its_kinds_defaults() -> None:
    config = from_dict(_config())
    provider = config.providers[0]
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.secret == KEY
    assert provider.timeouts.first_byte_s > 0 and provider.retries.max_attempts >= 1
    assert KEY not in repr(config) and KEY not in str(config.model_dump())


@pytest.mark.parametrize(
    ("kind", "adapter_class", "model", "url"),
    [
        (
            "anthropic",
            AnthropicAdapter,
            "claude-sonnet-4-5",
            "https://api.anthropic.com/v1/messages",
        ),
        (
            "gemini",
            GeminiAdapter,
            "gemini-2.5-flash",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
            ":generateContent",
        ),
    ],
)
def test_anthropic_and_gemini_need_only_a_kind_and_a_key(
    kind: str, adapter_class: type, model: str, url: str
) -> None:
    provider = {"name": "p", "kind": kind, "api_key": KEY, "drop_params": ["logit_bias"]}
    config = from_dict({"providers": [provider], "routes": {"smart": [f"p/{model}"]}})
    adapter = create_adapter(provider_settings(config.providers[0]))
    assert isinstance(adapter, adapter_class)
    payload = {"model": "smart", "messages": [{"role": "user", "content": "Hi"}]}
    payload["logit_bias"] = {"1": 5}  # a parameter neither has: dropped as configured
    call = adapter.build(
        UpstreamRequest(
            endpoint=Endpoint.CHAT,
            model="smart",
            target_model=model,
            body=b"",
            payload=payload,
            stream=False,
            request_id="config",
        )
    )
    assert call.url == url
    assert KEY in call.headers.values()
    assert b"logit_bias" not in call.body


def test_api_key_from_env_and_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    text = f"""
providers:
  - {{name: a, kind: openai, api_key: "${{THE_KEY}}"}}
  - {{name: b, kind: mistral, api_key_file: {key_file}}}
routes:
  r: [a/gpt-4o, b/mistral-small-latest]
"""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    config = load(path, env={"THE_KEY": "from-env"})
    assert [p.secret for p in config.providers] == ["from-env", KEY]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kind": "acme"}, "providers[0].kind: unknown provider kind 'acme'"),
        ({"kind": "azure"}, "providers[0]: `base_url` is required for kind 'azure'"),
        (
            {"kind": "azure", "base_url": "https://x.openai.azure.com"},
            "providers[0]: `options.api_version` is required for kind 'azure'",
        ),
        ({"base_url": "ftp://x"}, "providers[0]: `base_url` must start with http:// or https://"),
        ({"api_key_file": "/nonexistent/key"}, "set one of `api_key` and `api_key_file`"),
        ({"retries": {"max_attempts": 0}}, "providers[0].retries.max_attempts"),
        ({"timeouts": {"first_byte_s": -1}}, "providers[0].timeouts.first_byte_s"),
        ({"prices": {"gpt-4o-mini": {"input": 1}}}, "providers[0].prices.gpt-4o-mini.output"),
        ({"colour": "red"}, "providers[0].colour: unknown key"),
    ],
)
def test_provider_errors_name_the_key(change: dict[str, Any], expected: str) -> None:
    data = _config()
    data["providers"][0].update(change)
    message = _error(data)
    assert expected in message
    assert KEY not in message


def test_unreadable_key_file_is_named(tmp_path: Path) -> None:
    data = _config()
    del data["providers"][0]["api_key"]
    data["providers"][0]["api_key_file"] = str(tmp_path / "missing")
    assert "providers[0]: `api_key_file` cannot be read" in _error(data)


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ({"smart": []}, "routes.smart: list at least one target"),
        ({"smart": ["oai/gpt-5"]}, "routes.smart[0]: provider 'oai' lists no model 'gpt-5'"),
        ({"smart": ["nobody/x"]}, "routes.smart[0]: 'nobody/x' is neither `provider/model`"),
        ({"smart": ["oai/"]}, "routes.smart[0]: 'oai/' names no model"),
    ],
)
def test_route_errors_name_the_key(routes: dict[str, list[str]], expected: str) -> None:
    assert expected in _error(_config(routes=routes))


def test_a_route_may_not_shadow_a_local_model() -> None:
    engine = {"name": "e", "url": "http://127.0.0.1:1/v1", "served_model_names": ["smart"]}
    message = _error(_config(engines=[engine]))
    assert "routes.smart: 'smart' is already a model id of a local engine" in message


def test_a_route_may_list_a_local_model_first() -> None:
    engine = {"name": "e", "url": "http://127.0.0.1:1/v1", "served_model_names": ["llama"]}
    config = from_dict(_config(engines=[engine], routes={"smart": ["llama", "oai/gpt-4o-mini"]}))
    assert config.cloud_target("llama") is None
    cloud = config.cloud_target("oai/gpt-4o-mini")
    assert cloud is not None and cloud[1] == "gpt-4o-mini"


def test_config_check_lists_routes_and_never_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"providers: [{{name: oai, kind: openai, api_key: {KEY}}}]\n"
        "routes: {smart: [oai/gpt-4o-mini]}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 provider(s)" in done.stdout and "smart" in done.stdout
    assert KEY not in done.stdout + done.stderr
