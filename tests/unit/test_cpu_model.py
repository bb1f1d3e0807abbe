"""The converted CPU model's folder carries Spillgate's sampling defaults, old folders too."""

from __future__ import annotations

import json
from pathlib import Path

from spillgate.models.cpu_model import GENERATION_DEFAULTS, ensure_cpu_model


def _converted_folder(home: Path, generation_config: dict[str, object]) -> Path:
    """A folder as an earlier Spillgate left it (the weights' content does not matter here)."""
    folder = home / "models" / "smollm2-135m-instruct"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    (folder / "generation_config.json").write_text(json.dumps(generation_config))
    return folder


def test_a_folder_converted_without_defaults_gets_them_and_keeps_its_own_keys(
    tmp_path: Path,
) -> None:
    folder = _converted_folder(tmp_path, {"bos_token_id": 1, "eos_token_id": 2})
    assert ensure_cpu_model(tmp_path) == folder
    written = json.loads((folder / "generation_config.json").read_text())
    assert written == {"bos_token_id": 1, "eos_token_id": 2, **GENERATION_DEFAULTS}
    assert GENERATION_DEFAULTS["temperature"] != 1.0  # vLLM's own default is what we replace
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ]


def test_the_defaults_are_the_only_sampling_values_in_the_folder(tmp_path: Path) -> None:
    old = {"eos_token_id": 2, "temperature": 1.0, "top_p": 0.9, "top_k": 50}
    folder = _converted_folder(tmp_path, old)
    ensure_cpu_model(tmp_path)
    written = json.loads((folder / "generation_config.json").read_text())
    assert written == {"eos_token_id": 2, **GENERATION_DEFAULTS}
