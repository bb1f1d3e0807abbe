"""Configuration: YAML, ${ENV} interpolation, errors that name the key, `config check`."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from spillgate.server.config import Config, ConfigError, EngineConfig, from_dict, load
from spillgate.server.config_base import Strict
from spillgate.server.config_routing import SchedulerConfig
from spillgate.server.privacy.config import PresidioOptions, PrivacyConfig
from spillgate.server.runtime import RuntimeStore


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spillgate.yaml"
    path.write_text(text)
    return path


def test_full_config_with_env_interpolation(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
server: {port: 9000, max_body_bytes: 1024}
engines:
  - name: llama
    model: ${MODEL_DIR}/llama
    served_model_names: [llama-8b]
    args: [--max-model-len, "${CTX:-4096}"]
  - name: remote
    url: http://127.0.0.1:8001/v1
    served_model_names: [qwen]
aliases: {gpt-4o-mini: llama-8b}
""",
    )
    config = load(path, env={"MODEL_DIR": "/models"})
    assert config.server.port == 9000 and config.server.max_body_bytes == 1024
    assert config.engines[0].model == "/models/llama"
    assert config.engines[0].args == ["--max-model-len", "4096"]
    assert config.engines[1].model_names == ["qwen"]
    assert config.aliases == {"gpt-4o-mini": "llama-8b"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: {port: 99999}", "server.port: Input should be less than or equal to 65535"),
        ("server: {prot: 1}", "server.prot: unknown key"),
        ("engines: [{name: a}]", "engines[0]: set exactly one of `model` (launch vLLM), `url`"),
        ("engines: [{name: a, url: 'ftp://x'}]", "engines[0]: `url` must start with http://"),
        (
            "engines: [{name: a, model: m}, {name: a, model: n}]",
            "engines: engine names must be unique; repeated: a",
        ),
        ("engines: [{name: a, model: m}]\naliases: {x: y}", "alias 'x' points to 'y'"),
        ("engines: [{name: a, model: m, startup_timeout_s: -1}]", "engines[0].startup_timeout_s"),
        ("engines: [{name: a, model: '${NOPE}'}]", "environment variables referenced but not set"),
        ("engines: [oops", "is not valid YAML"),
        (
            "engines: [{name: a, url: 'http://127.0.0.1:1/v1', env: {X: '1'}}]",
            "`args`, `env`, `launcher` and `port` apply to launched engines only",
        ),
        ("- a\n- b", "the top level must be a mapping"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(_write(tmp_path, text), env={})
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ("[--max-num-seqs, abc]", "'abc'"),
        ("[--max-num-seqs=]", "''"),
        ("[--max-num-seqs]", "''"),
        ("['--max-num-seqs=0']", "'0'"),
        ("[--max_num_seqs, '-4']", "'-4'"),
        ("['--max-num-seqs=8', --max-num-seqs, '²']", "'²'"),
    ],
)
def test_a_max_num_seqs_that_is_no_number_is_refused_naming_the_engine(
    tmp_path: Path, args: str, shown: str
) -> None:
    text = f"engines: [{{name: ok, model: m}}, {{name: gpu0, model: m, args: {args}}}]"
    with pytest.raises(ConfigError) as err:
        load(_write(tmp_path, text), env={})
    assert f"engines[1]: engine 'gpu0': `args` gives --max-num-seqs {shown}" in str(err.value)
    assert "whole number above 0" in str(err.value)


def test_a_max_num_seqs_sets_the_engines_slots(tmp_path: Path) -> None:
    text = "engines: [{name: gpu0, model: m, args: [--max-num-seqs, '8', '--max-num-seqs=12']}]"
    config = load(_write(tmp_path, text), env={})
    runtime = RuntimeStore(config).engine(SimpleNamespace(name="gpu0"))
    assert runtime.queue.capacity == 12  # the last one given, as vLLM reads it


def test_config_check_command(tmp_path: Path) -> None:
    good = _write(
        tmp_path, "engines: [{name: a, url: 'http://127.0.0.1:1/v1', served_model_names: [m]}]"
    )
    ok = subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "config", "check", str(good)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "valid; 1 engine(s), 0 provider(s); models: m" in ok.stdout
    bad = _write(tmp_path, "server: {port: nope}")
    failed = subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "config", "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 2
    assert "server.port: Input should be a valid integer" in failed.stderr


def test_served_model_name_without_a_model_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "serve", "--served-model-name", "x"],
        capture_output=True,
        text=True,
        env={**os.environ, "SPILLGATE_HOME": str(tmp_path)},
        timeout=60,
    )
    assert out.returncode == 2
    assert "--served-model-name names the model given with --model" in out.stderr


def _sections(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    yield model
    for field in model.model_fields.values():
        for inner in (field.annotation, *typing.get_args(field.annotation)):
            for arg in (inner, *typing.get_args(inner)):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    yield from _sections(arg)


def test_every_section_refuses_unknown_keys_through_the_one_base() -> None:
    sections = set(_sections(Config))
    assert {PrivacyConfig, PresidioOptions, SchedulerConfig, EngineConfig} <= sections
    assert all(issubclass(section, Strict) for section in sections), sections
    with pytest.raises(ConfigError, match=r"privacy\.presidio\.enable: unknown key"):
        from_dict({"privacy": {"presidio": {"enable": True}}})
