"""Inference cost of an architecture: FLOPs, bytes, and a roofline model of a generate call.

All shape numbers come from `lawsearch.arch`: every function takes an `ArchSpec` or an
`arch.ShapeArrays` (many shapes as arrays, or a continuous relaxation as jax arrays) and uses only
arithmetic on it. Units: FLOPs, bytes, seconds, tokens/s. numpy only.

Per generated token at KV length T (PAPER.md section 2), with d_q = n_heads*head_dim:
    paper form:    2*N + 2*n_layers*T*d_q             (attention counts q.k only)
    physical form: 2*N + 4*n_layers*T*d_q + 2*d*V     (q.k and p.v, plus the output-head logits)

Multi-head latent attention (arch.py) decodes in the absorbed form, which is what every function
here (the roofline included) counts: wkv_b is folded into the query and the output, so the
weights still cost 2*N per token and attention runs over the cached latent, d_q becoming
ArchSpec.decode_score_width = n_heads*(kv_lora_rank + qk_rope_head_dim) for q.k and
decode_value_width = n_heads*kv_lora_rank for p.v; the cache holds kv_cache_width =
kv_lora_rank + qk_rope_head_dim elements per token per layer. `mla_naive_flops_per_token` counts
the naive form (the cached latents up-projected through wkv_b at every step) for comparison.
For GQA every width above is d_q and the formulas are the paper's.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np

from lawsearch import inputs
from lawsearch.arch import ArchSpec, ShapeArrays, experts_touched
from lawsearch.errors import UserError
from lawsearch.table import format_table

Shape = ArchSpec | ShapeArrays
FlopsForm = Literal["paper", "physical"]


def _check_form(form: str) -> None:
  if form not in ("paper", "physical"):
    raise UserError(f"form must be 'paper' or 'physical', got {form!r}")


def inference_flops_per_token(arch: Shape, context_len, form: FlopsForm = "paper"):
  """FLOPs to generate one token attending to `context_len` positions (scalar or array); MLA in
  the absorbed form (module docstring)."""
  _check_form(form)
  t = context_len
  widths = arch.decode_score_width + (0 if form == "paper" else arch.decode_value_width)
  flops = 2.0 * arch.active_non_embedding_params + 2.0 * arch.n_layers * t * widths
  if form == "physical":
    flops = flops + 2.0 * arch.d_model * arch.vocab_size
  return flops


def mla_naive_flops_per_token(arch: ArchSpec, context_len, form: FlopsForm = "paper"):
  """FLOPs per generated token of MLA decoded naively: every step up-projects the whole cached
  latent through wkv_b (2*T*kv_lora_rank*n_heads*(nope + v) per layer, replacing wkv_b's 2*params
  on the new token), then attends with the full heads (q.k over n_heads*head_dim, p.v over
  n_heads*v_head_dim)."""
  _check_form(form)
  if not arch.is_mla:
    raise UserError(f"the naive MLA form needs an MLA ArchSpec, got attention={arch.attention!r}")
  t, layers = context_len, arch.n_layers
  wkv_b = arch.kv_lora_rank * arch.n_heads * (arch.qk_nope_head_dim + arch.v_head_dim)
  widths = arch.attn_width + (0 if form == "paper" else arch.v_width)
  flops = (2.0 * (arch.active_non_embedding_params - layers * wkv_b)
           + 2.0 * layers * t * (wkv_b + widths))
  if form == "physical":
    flops = flops + 2.0 * arch.d_model * arch.vocab_size
  return flops


def prefill_flops(arch: Shape, seq_len: int, form: FlopsForm = "physical") -> float:
  """FLOPs to prefill one sequence of `seq_len` tokens (causal attention, logits of the last only).

  q.k over attn_width, p.v over v_width per (query, key) pair: MLA prefills in the naive form
  (keys and values up-projected once per token, inside 2*N)."""
  _check_form(form)
  widths = arch.attn_width + (0 if form == "paper" else arch.v_width)
  pairs = seq_len * (seq_len + 1) / 2  # causal (query, key) pairs
  flops = 2.0 * arch.active_non_embedding_params * seq_len
  flops += 2.0 * arch.n_layers * pairs * widths
  if form == "physical":
    flops += 2.0 * arch.d_model * arch.vocab_size
  return flops


def kv_cache_bytes_per_token(arch: Shape, bytes_per_element: float = 2) -> float:
  """Bytes cached per token over all layers: K and V for GQA, the latent and the RoPE key for MLA
  (`ArchSpec.kv_cache_width` elements per layer)."""
  return 1.0 * arch.n_layers * arch.kv_cache_width * bytes_per_element


def weight_bytes(arch: Shape, bytes_per_element: float = 2) -> float:
  """Bytes to hold every parameter."""
  return arch.total_params * bytes_per_element


def weight_bytes_read_per_step(arch: Shape, bytes_per_element: float = 2, batch=1) -> float:
  """Weight bytes one decode step of `batch` sequences streams: all layers, norms and the output
  head (V x d); of a mixture of experts' routed experts, those some token of the batch uses
  (`arch.experts_touched`, uniform routing), shared experts and routers always.

  The embedding lookup reads only a few rows, so a tied or untied model reads the same.
  """
  head = arch.vocab_size * arch.d_model
  routed = arch.moe_layers * arch.n_experts * arch.expert_params
  touched = arch.moe_layers * experts_touched(arch.n_experts, arch.top_k, batch) * arch.expert_params
  return (arch.non_embedding_params - routed + touched + arch.norm_params + head) * bytes_per_element


# -- hardware ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Hardware:
  """Peak dense bf16 FLOP/s, HBM bandwidth (bytes/s), HBM capacity (bytes) and board power
  (W, the datasheet's maximum; None where unpublished) of one chip."""

  name: str
  peak_flops: float
  hbm_bandwidth: float
  hbm_bytes: float
  power_w: float | None = None


_GiB = 2**30
HARDWARE: dict[str, Hardware] = {
    # NVIDIA A100 datasheet (2021): 312 TFLOP/s dense BF16; 40GB HBM2 at 1,555 GB/s; 80GB at 2,039 GB/s.
    # SXM4 maximum TDP 400 W (both memory sizes).
    "a100-40gb": Hardware("a100-40gb", 312e12, 1555e9, 40 * _GiB, 400),
    "a100-80gb": Hardware("a100-80gb", 312e12, 2039e9, 80 * _GiB, 400),
    # NVIDIA H100 datasheet, SXM5: 989 TFLOP/s dense BF16 (1,979 with sparsity), 3.35 TB/s, 80GB,
    # up to 700 W.
    "h100-sxm": Hardware("h100-sxm", 989e12, 3.35e12, 80 * _GiB, 700),
    # NVIDIA H200 datasheet, SXM: 989 TFLOP/s dense BF16, 4.8 TB/s, 141GB HBM3e, up to 700 W.
    "h200": Hardware("h200", 989e12, 4.8e12, 141 * _GiB, 700),
    # Google Cloud TPU docs (system architecture pages), per chip: v5e 197 TFLOP/s bf16, 819 GB/s, 16 GiB.
    "tpu-v5e": Hardware("tpu-v5e", 197e12, 819e9, 16 * _GiB),
    # v5p: 459 TFLOP/s bf16, 2,765 GB/s, 95 GiB.
    "tpu-v5p": Hardware("tpu-v5p", 459e12, 2765e9, 95 * _GiB),
    # v6e (Trillium): 918 TFLOP/s bf16, 1,640 GB/s, 32 GiB.
    "tpu-v6e": Hardware("tpu-v6e", 918e12, 1640e9, 32 * _GiB),
}


def hardware_for_device(device_kind: str) -> Hardware | None:
  """The `HARDWARE` entry of a JAX device kind ("NVIDIA H100 80GB HBM3", "TPU v5 lite", ...), or
  None for a device not in the table (a CPU, another chip). The one place that maps kinds."""
  kind = device_kind.lower()
  for needle, name in (("h200", "h200"), ("h100", "h100-sxm")):
    if needle in kind:
      return HARDWARE[name]
  if "a100" in kind:
    return HARDWARE["a100-80gb" if "80" in kind else "a100-40gb"]
  if "tpu" in kind:
    if "v6" in kind:
      return HARDWARE["tpu-v6e"]
    if "v5" in kind:
      return HARDWARE["tpu-v5e" if ("lite" in kind or "v5e" in kind) else "tpu-v5p"]
  return None


def node(hw: Hardware | str, chips: int) -> Hardware:
  """`chips` of `hw` serving one model together (tensor parallel), as one roofline: peak,
  bandwidth and memory add up (communication is not modelled)."""
  hw = hardware(hw) if isinstance(hw, str) else hw
  if int(chips) != chips or chips < 1:
    raise UserError(f"chips must be a positive integer, got {chips!r}")
  if chips == 1:
    return hw
  return Hardware(f"{chips}x {hw.name}", chips * hw.peak_flops, chips * hw.hbm_bandwidth,
                  chips * hw.hbm_bytes, None if hw.power_w is None else chips * hw.power_w)


def hardware(name: str) -> Hardware:
  """A chip from `HARDWARE`; unknown names raise an error listing the known ones."""
  inputs.argument(name, "name", "string", "cost.hardware")
  try:
    return HARDWARE[name.lower()]
  except KeyError:
    raise UserError(f"unknown hardware {name!r}; known: {', '.join(HARDWARE)}") from None


@dataclasses.dataclass(frozen=True)
class Efficiency:
  """Fractions of peak compute and bandwidth a serving stack reaches (1 = the roofline).

  Set them from measurements (`lawsearch bench --calibrate`) to turn the roofline into a forecast.
  """

  compute: float = 1.0
  memory: float = 1.0

  def __post_init__(self):
    for field in ("compute", "memory"):
      value = getattr(self, field)
      if not 0 < value <= 1:
        raise UserError(f"Efficiency.{field} is a fraction of peak in (0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True)
class Throughput:
  """A roofline estimate of one generate call (times in seconds, rates in tokens/s).

  When the weights and the KV cache of the batch do not fit in HBM, `fits` is False and every
  rate is 0; `max_batch` is then the largest batch that fits (0 if the weights alone do not).
  """

  batch: int
  fits: bool
  max_batch: int
  memory_bytes: float
  prefill_s: float
  decode_s: float
  output_tokens_per_s: float
  total_tokens_per_s: float

  @property
  def total_s(self) -> float:
    return self.prefill_s + self.decode_s


def serving_memory_bytes(arch: Shape, batch: int, seq_len: int, bytes_per_element: float = 2):
  """HBM bytes to serve `batch` sequences of `seq_len` tokens: the weights plus the full KV cache."""
  return weight_bytes(arch, bytes_per_element) + batch * seq_len * kv_cache_bytes_per_token(
      arch, bytes_per_element)


def max_batch(arch: Shape, hw: Hardware, seq_len: int, bytes_per_element: float = 2,
              memory_fraction: float = 0.9, xp=np):
  """Largest batch whose weights plus KV cache of `seq_len` tokens fit in `memory_fraction` of HBM.

  0.9 matches vLLM's default gpu_memory_utilization.
  """
  free = memory_fraction * hw.hbm_bytes - weight_bytes(arch, bytes_per_element)
  per_seq = seq_len * kv_cache_bytes_per_token(arch, bytes_per_element)
  return xp.maximum(xp.floor(free / per_seq), 0)


def roofline_times(arch: Shape, hw: Hardware, batch: int, input_len: int, output_len: int, *,
                   bytes_per_element: float = 2, efficiency: Efficiency = Efficiency(), xp=np):
  """(prefill seconds, decode seconds) of one generate call; arrays when `arch` holds arrays.

  A prefill of `batch` prompts of `input_len` tokens yields the first output token; then
  `output_len - 1` decode steps each attend over a KV cache that grows by one token per step. Each
  phase takes max(FLOPs / (peak * efficiency.compute), bytes / (bandwidth * efficiency.memory)),
  where decode bytes are the weights plus the filled KV cache read once per step. Physical FLOPs
  (MLA: the absorbed form; a mixture of experts: active parameters). A mixture of experts' decode
  step reads the experts its batch touches, the prefill (batch * input_len tokens) all of them.
  `xp` is numpy, or jax.numpy for relaxed (differentiable) shapes.
  """
  flops_rate = hw.peak_flops * efficiency.compute
  bytes_rate = hw.hbm_bandwidth * efficiency.memory
  kv_tok = kv_cache_bytes_per_token(arch, bytes_per_element)
  w_bytes = weight_bytes_read_per_step(arch, bytes_per_element, batch)
  w_prefill = weight_bytes_read_per_step(arch, bytes_per_element, batch * input_len)
  prefill_s = xp.maximum(batch * prefill_flops(arch, input_len) / flops_rate,
                         (w_prefill + batch * input_len * kv_tok) / bytes_rate)
  # Decode steps along a trailing axis: shape [..., output_len - 1].
  kv_len = input_len + 1.0 * xp.arange(1, output_len)
  expand = lambda v: xp.asarray(v)[..., None]
  step_flops = batch * inference_flops_per_token(_map(arch, expand), kv_len, form="physical")
  step_bytes = expand(w_bytes) + batch * kv_len * expand(kv_tok)
  decode_s = xp.sum(xp.maximum(step_flops / flops_rate, step_bytes / bytes_rate), axis=-1)
  return prefill_s, decode_s


def _map(arch: Shape, fn) -> Shape:
  """`arch` with `fn` applied to every field (a ShapeArrays), or `arch` itself (an ArchSpec)."""
  if isinstance(arch, ArchSpec):
    return arch
  return ShapeArrays(**{f: fn(getattr(arch, f)) for f in arch.__dataclass_fields__})


def check_scenario(batch, input_len, output_len) -> None:
  """A serving scenario's batch and lengths are integers >= 1 (UserError naming the bad one)."""
  for name, value in (("batch", batch), ("input_len", input_len), ("output_len", output_len)):
    inputs.positive_int(value, name)


def _check_chip(spec, hw, function: str) -> None:
  inputs.instance(spec, "arch", ArchSpec, "an ArchSpec", function)
  inputs.instance(hw, "hw", (Hardware, str), "a Hardware or the name of one in HARDWARE",
                  function)


def roofline_throughput(arch: ArchSpec, hw: Hardware | str, batch: int, input_len: int = 4096,
                        output_len: int = 1024, *, bytes_per_element: float = 2,
                        efficiency: Efficiency = Efficiency(), memory_fraction: float = 0.9,
                        ) -> Throughput:
  """Roofline model of one generate call in the paper's protocol (see `roofline_times`)."""
  _check_chip(arch, hw, "cost.roofline_throughput")
  hw = hardware(hw) if isinstance(hw, str) else hw
  check_scenario(batch, input_len, output_len)
  seq_len = input_len + output_len
  memory = serving_memory_bytes(arch, batch, seq_len, bytes_per_element)
  largest = int(max_batch(arch, hw, seq_len, bytes_per_element, memory_fraction))
  prefill_s, decode_s = (float(t) for t in roofline_times(
      arch, hw, batch, input_len, output_len, bytes_per_element=bytes_per_element,
      efficiency=efficiency))
  fits = batch <= largest
  total_s = prefill_s + decode_s
  out_rate = batch * output_len / total_s if fits else 0.0
  total_rate = batch * seq_len / total_s if fits else 0.0
  return Throughput(int(batch), fits, largest, float(memory), prefill_s, decode_s, out_rate,
                    total_rate)


@dataclasses.dataclass(frozen=True)
class ThroughputTable:
  """`roofline_throughput` of named architectures across batch sizes: one row each (name, batch,
  fits, max_batch, memory_GiB, prefill_s, decode_s, output_tok_s, total_tok_s)."""

  hardware: str
  input_len: int
  output_len: int
  rows: list[dict]

  def summary(self) -> str:
    return (f"roofline on {self.hardware}: {self.input_len} input, {self.output_len} output "
            "tokens\n" + format_table(self.rows, list(self.rows[0])))


def throughput_table(specs: Sequence[tuple[str, ArchSpec]], hw: Hardware | str,
                     batches: Sequence[int], input_len: int = 4096, output_len: int = 1024,
                     efficiency: Efficiency = Efficiency()) -> ThroughputTable:
  """`roofline_throughput` of each (name, ArchSpec) at each batch size (`lawsearch cost`)."""
  hw = hardware(hw) if isinstance(hw, str) else hw
  rows = []
  for name, spec in specs:
    for batch in batches:
      t = roofline_throughput(spec, hw, batch, input_len, output_len, efficiency=efficiency)
      rows.append({"name": name, "batch": batch, "fits": t.fits, "max_batch": t.max_batch,
                   "memory_GiB": t.memory_bytes / 2**30, "prefill_s": t.prefill_s,
                   "decode_s": t.decode_s, "output_tok_s": t.output_tokens_per_s,
                   "total_tok_s": t.total_tokens_per_s})
  return ThroughputTable(hw.name, input_len, output_len, rows)


# -- where a decode step's cost goes ---------------------------------------------------------------
COMPONENTS = {"attn_proj": "attention projections", "attn_cache": "attention over the cache",
              "mlp": "MLP", "experts": "routed experts", "shared": "shared experts",
              "router": "router", "head": "embedding/output head"}  # key -> label
MOE_COMPONENTS = ("experts", "shared", "router")  # a mixture of experts' only ("MLP" is then the
# dense layers')


@dataclasses.dataclass(frozen=True)
class DecodeBreakdown:
  """One decode step of `batch` sequences at KV length `context_len`, split by component.

  flops: per component for the whole batch (physical form: attention over the cache counts q.k
  and p.v; the head is the logits' d x V matmul). bytes: what the step streams from HBM: each
  component's weights once (norm scales with the head; of the routed experts those the batch
  touches, `arch.experts_touched`), and for "attention over the cache" the batch's KV cache. Time: the roofline step time max(FLOPs / peak, bytes / bandwidth), shared out
  by the binding resource (FLOP shares when compute-bound, byte shares when memory-bound).
  """

  context_len: int
  batch: int
  hardware: str
  flops: dict[str, float]  # COMPONENTS key -> FLOPs of the step (MOE_COMPONENTS: MoE only)
  bytes: dict[str, float]  # COMPONENTS key -> bytes the step streams
  compute_s: float   # all FLOPs at the chip's peak
  memory_s: float    # all bytes at the chip's bandwidth

  @property
  def bound(self) -> str:
    return "compute" if self.compute_s > self.memory_s else "memory"

  @property
  def step_s(self) -> float:
    return max(self.compute_s, self.memory_s)

  def shares(self, what: str) -> dict[str, float]:
    """Fractions (summing to 1) of "flops", "bytes" or "time" per component."""
    if what == "time":
      what = "flops" if self.bound == "compute" else "bytes"
    if what not in ("flops", "bytes"):
      raise UserError(f"shares of 'flops', 'bytes' or 'time', got {what!r}")
    parts = getattr(self, what)
    total = sum(parts.values())
    return {k: v / total for k, v in parts.items()}


def decode_breakdown(arch: ArchSpec, hw: Hardware | str, batch: int, context_len: int, *,
                     bytes_per_element: float = 2) -> DecodeBreakdown:
  """Where one decode step's FLOPs, bytes and roofline time go (see `DecodeBreakdown`); the
  totals are those of `roofline_times`'s step at the same KV length. Memory capacity is not
  checked: shares are the same on one chip or split over many by tensor parallelism."""
  _check_chip(arch, hw, "cost.decode_breakdown")
  hw = hardware(hw) if isinstance(hw, str) else hw
  inputs.positive_int(batch, "batch")
  inputs.positive_int(context_len, "context_len")
  b, layers, moe = float(batch), arch.n_layers, arch.moe_layers
  weights = {"attn_proj": layers * arch.attn_params_per_layer,  # parameters each token uses
             "mlp": (layers - moe) * arch.mlp_params_per_layer,
             "experts": moe * arch.top_k * arch.expert_params,
             "shared": moe * arch.n_shared_experts * arch.expert_params,
             "router": moe * arch.router_params_per_layer}
  flops = {**{k: 2 * b * v for k, v in weights.items()},
           "attn_cache": 2 * b * layers * context_len * (arch.decode_score_width
                                                         + arch.decode_value_width),
           "head": 2 * b * arch.d_model * arch.vocab_size}
  touched = moe * experts_touched(arch.n_experts, arch.top_k, batch) * arch.expert_params
  nbytes = {**{k: v * bytes_per_element for k, v in weights.items()},
            "experts": float(touched) * bytes_per_element,
            "attn_cache": b * context_len * kv_cache_bytes_per_token(arch, bytes_per_element),
            "head": (arch.vocab_size * arch.d_model + arch.norm_params) * bytes_per_element}
  keys = [k for k in COMPONENTS if arch.is_moe or k not in MOE_COMPONENTS]
  flops, nbytes = ({k: d[k] for k in keys} for d in (flops, nbytes))
  return DecodeBreakdown(int(context_len), int(batch), hw.name, flops, nbytes,
                         sum(flops.values()) / hw.peak_flops,
                         sum(nbytes.values()) / hw.hbm_bandwidth)
