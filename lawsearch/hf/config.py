"""An `ArchSpec` as a Hugging Face `config.json`, and back: the architecture-class choice.

Current transformers (5.x) refuses a LlamaConfig whose hidden_size is not a multiple of
num_attention_heads, even with an explicit head_dim, which rules out the paper's non-square shapes
(Panda, Surefire). MistralForCausalLM with `sliding_window: null` is the same computation (pre-
RMSNorm blocks, rotate-half RoPE, GQA, SwiGLU, no biases) and takes any head_dim, and vLLM and
SGLang read the same configs. So the class is chosen by the shape:

    n_heads * head_dim == d_model   LlamaForCausalLM    ("square" attention)
    otherwise                       MistralForCausalLM  (sliding_window null)
    mlp="moe"                       MixtralForCausalLM  (sliding_window null)

Mixtral's sparse block is lawsearch's MoE with a softmax router, top_k renormalised weights, every
layer routed and no shared expert; other MoE shapes (shared experts, leading dense layers, a
sigmoid router: DeepSeek-V3's) have no transformers class computing the same thing and are
refused, as is Qwen3-MoE's (its attention normalises q and k per head, which lawsearch's does not).

`hf_config` writes every field explicitly (head_dim included). `read_hf_config` takes a Llama-,
Mistral- or Mixtral-architecture config.json (e.g. LLaMA-3.2-1B's) and says what lawsearch would compute with it,
refusing what lawsearch's decoder cannot compute (biases, another activation, a sliding window
shorter than the context, RoPE scalings other than LLaMA-3's). No JAX, no transformers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from lawsearch import inputs
from lawsearch.arch import ArchSpec
from lawsearch.errors import UserError

ROPE_THETA = 500_000.0  # LLaMA-3 (PAPER.md section 5)
RMS_NORM_EPS = 1e-5
LLAMA3_SCALING_KEYS = ("factor", "low_freq_factor", "high_freq_factor",
                       "original_max_position_embeddings")
_CLASSES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
            "mixtral": "MixtralForCausalLM"}


def unsupported(spec: ArchSpec) -> str:
  """Why no Llama, Mistral or Mixtral class computes `spec`; "" when one does."""
  if spec.is_mla:
    return ("an MLA shape (DeepSeek-style latent attention) has no Llama, Mistral or Mixtral "
            "config; Hugging Face export covers GQA shapes only")
  unlike = [f"{k}={v!r}" for k, v, mixtral in (
      ("n_shared_experts", spec.n_shared_experts, 0),
      ("first_dense_layers", spec.first_dense_layers, 0), ("router", spec.router, "softmax"),
      ("norm_topk_prob", spec.norm_topk_prob, True))
            if spec.is_moe and v != mixtral]
  if unlike:
    return (f"this mixture of experts ({', '.join(unlike)}) has no transformers class that "
            "computes it; Hugging Face export covers Mixtral's MoE (a softmax router, "
            "renormalised top-k weights, every layer routed, no shared expert)")
  return ""


def model_type(spec: ArchSpec) -> str:
  """"mixtral" for a mixture of experts, "llama" for square attention (n_heads * head_dim ==
  d_model), "mistral" otherwise; a UserError saying why for what none computes (`unsupported`)."""
  problem = unsupported(spec)
  if problem:
    raise UserError(problem)
  if spec.is_moe:
    return "mixtral"
  return "llama" if spec.attn_width == spec.d_model else "mistral"


def hf_config(spec: ArchSpec, *, rope_theta: float = ROPE_THETA, norm_eps: float = RMS_NORM_EPS,
              rope_scaling: Mapping[str, float] | None = None,
              max_position_embeddings: int = 131072, dtype: str = "bfloat16",
              eos_token_id: int | None = None, bos_token_id: int | None = None) -> dict:
  """The config.json dict of `spec` in the class `model_type(spec)` picks.

  rope_scaling: LLaMA-3's {factor, low_freq_factor, high_freq_factor,
  original_max_position_embeddings}, or None. RoPE is written both ways: `rope_parameters`
  (transformers 5) and `rope_theta` / `rope_scaling` (transformers 4, older vLLM).
  """
  kind = model_type(spec)
  rope = {"rope_type": "default", "rope_theta": float(rope_theta)}
  if rope_scaling:
    rope = {**rope, "rope_type": "llama3", **{k: rope_scaling[k] for k in LLAMA3_SCALING_KEYS}}
  config = {
      "architectures": [_CLASSES[kind]], "model_type": kind,
      "hidden_size": spec.d_model, "intermediate_size": spec.ffn_dim,
      "num_hidden_layers": spec.n_layers, "num_attention_heads": spec.n_heads,
      "num_key_value_heads": spec.n_kv_heads, "head_dim": spec.head_dim,
      "vocab_size": spec.vocab_size, "tie_word_embeddings": spec.tie_embeddings,
      "hidden_act": "silu", "rms_norm_eps": norm_eps, "rope_parameters": rope,
      "rope_theta": float(rope_theta),
      "rope_scaling": {**rope, "rope_type": "llama3"} if rope_scaling else None,
      "max_position_embeddings": max_position_embeddings, "torch_dtype": dtype,
      "bos_token_id": bos_token_id, "eos_token_id": eos_token_id,
  }
  if kind == "llama":
    config.update(attention_bias=False, mlp_bias=False)
  else:
    config.update(sliding_window=None)
  if kind == "mixtral":
    config.update(intermediate_size=spec.expert_ffn_dim, num_local_experts=spec.n_experts,
                  num_experts_per_tok=spec.top_k, router_jitter_noise=0.0)
  return config


@dataclasses.dataclass(frozen=True)
class HFModel:
  """What a Llama/Mistral/Mixtral config.json asks lawsearch's decoder to compute.

  rope_scaling: LLaMA-3's frequency scaling (LLAMA3_SCALING_KEYS) or None; max_seq_len: the
  longest context it may run (max_position_embeddings, or a shorter sliding window); eos_token_id:
  the first end-of-sequence id, or None.
  """

  spec: ArchSpec
  model_type: str
  rope_theta: float
  norm_eps: float
  rope_scaling: dict[str, float] | None
  max_seq_len: int
  eos_token_id: int | None


def _rope(config: Mapping[str, Any], source: str) -> tuple[float, dict | None]:
  """(theta, LLaMA-3 scaling or None) from transformers 5's rope_parameters or 4's rope_*."""
  rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
  theta = float(rope.get("rope_theta", config.get("rope_theta", 10_000.0)))
  kind = rope.get("rope_type", rope.get("type", "default"))
  if kind == "default":
    return theta, None
  if kind != "llama3":
    raise UserError(f"{source}: RoPE scaling {kind!r} is not supported (lawsearch computes the "
                    "plain rotation and LLaMA-3's scaling); convert a model without it")
  missing = [k for k in LLAMA3_SCALING_KEYS if k not in rope]
  if missing:
    raise UserError(f"{source}: llama3 RoPE scaling lacks {missing}")
  return theta, {k: float(rope[k]) for k in LLAMA3_SCALING_KEYS}


def _optional(config: Mapping[str, Any], key: str, kind: type, default, source: str):
  """config[key] when present and not null, else `default`; a UserError unless it is a `kind`
  (bool for bool, an integer for int, a number for float; booleans are not numbers) and, for
  numbers, positive."""
  value = config.get(key)
  if value is None:
    return default
  ok = (isinstance(value, bool) if kind is bool else
        not isinstance(value, bool) and isinstance(value, int if kind is int else (int, float))
        and value > 0)
  if not ok:
    words = {bool: "true or false", int: "a positive integer", float: "a positive number"}[kind]
    raise UserError(f"{source}: {key} must be {words}, got {value!r}")
  return kind(value)


def read_hf_config(path: str) -> HFModel:
  """The model a Llama-, Mistral- or Mixtral-architecture config.json describes, or a UserError naming the
  field lawsearch cannot compute."""
  config = inputs.read_json(path, "Hugging Face config")
  kind = config.get("model_type")
  if kind not in _CLASSES:
    raise UserError(f"Hugging Face config {path}: model_type {kind!r} is not supported; "
                    f"lawsearch imports {', '.join(_CLASSES)} checkpoints")
  source = f"Hugging Face config {path}"
  inputs.require(config, source, {k: "integer" for k in (
      "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
      "vocab_size")})
  for flag in ("attention_bias", "mlp_bias"):
    if _optional(config, flag, bool, False, source):
      raise UserError(f"{source}: {flag} is true; lawsearch's decoder has no biases")
  if config.get("hidden_act", "silu") != "silu":
    raise UserError(f"{source}: hidden_act {config['hidden_act']!r}; lawsearch's MLP is SwiGLU "
                    "(silu)")
  heads = config["num_attention_heads"]
  moe = {}
  if kind == "mixtral":
    inputs.require(config, source, {"num_local_experts": "integer",
                                    "num_experts_per_tok": "integer"})
    moe = dict(mlp="moe", n_experts=config["num_local_experts"],
               top_k=config["num_experts_per_tok"], expert_ffn_dim=config["intermediate_size"])
  spec = ArchSpec(
      n_layers=config["num_hidden_layers"], d_model=config["hidden_size"], n_heads=heads,
      n_kv_heads=_optional(config, "num_key_value_heads", int, heads, source),
      head_dim=_optional(config, "head_dim", int, config["hidden_size"] // heads, source),
      ffn_dim=config["intermediate_size"], vocab_size=config["vocab_size"],
      tie_embeddings=_optional(config, "tie_word_embeddings", bool, False, source),  # both default
      **moe)
  for key in ("rope_theta", "rms_norm_eps"):
    _optional(config, key, float, None, source)
  theta, scaling = _rope(config, source)
  max_len = _optional(config, "max_position_embeddings", int, 2048, source)
  window = _optional(config, "sliding_window", int, None, source) if kind != "llama" else None
  if window:  # full attention within the window is the same computation
    max_len = min(max_len, window)
  eos = config.get("eos_token_id")
  eos = eos[0] if isinstance(eos, list) and eos else eos
  return HFModel(spec, kind, theta, _optional(config, "rms_norm_eps", float, 1e-6, source),
                 scaling, max_len, eos if isinstance(eos, int) else None)
