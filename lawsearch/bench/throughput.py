"""Generation throughput in the paper's protocol (PAPER.md section 2), with memory-bandwidth use.

Protocol: randomly initialised weights; for each batch size, prompts of `input_len` random tokens;
exactly `output_len` new tokens per request (end-of-sequence ignored); one warm-up call, then
`trials` timed calls; throughput = generated tokens / wall time of the whole call (prefill
included), averaged over trials. Compilation is timed separately and never counted.

Per batch size it reports output, total (input + output) and decode-only tokens/s, requests/s, the
prefill/decode split, and the achieved HBM bandwidth of decode: bytes a step must read (weights,
`cost.weight_bytes_read_per_step`, plus the filled KV cache) summed over the steps, over decode
time; with its fraction of the chip's peak and the `cost.roofline_throughput` forecast beside it.

The stage's entry point is `measure` (named architectures in, a `BenchResult` out); `run` measures
one `BenchConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lawsearch import cost
from lawsearch.arch import ArchSpec
from lawsearch.errors import UserError
from lawsearch.model import ModelConfig, build
from lawsearch.model.attention import resolve_impl
from lawsearch.model.generate import Engine, Sampling, cache_length
from lawsearch.model.transformer import resolve_dtype
from lawsearch.table import format_table
from lawsearch.train import loop

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """One throughput measurement: an architecture over a list of batch sizes."""

  arch: ArchSpec
  batch_sizes: tuple[int, ...] = (1, 8, 32, 64)
  input_len: int = 4096
  output_len: int = 1024
  trials: int = 5
  warmup: int = 1
  dtype: str = "bfloat16"         # weights, activations and KV cache
  decode_impl: str = "pallas"     # lawsearch.kernels.gqa_decode impl
  attention_impl: str = "xla"     # prefill attention (jax.nn.dot_product_attention)
  prefill_batch: int = 16         # prompts prefilled together (bounds prefill activations)
  seed: int = 0

  def __post_init__(self):
    if not self.batch_sizes or any(int(b) != b or b < 1 for b in self.batch_sizes):
      raise UserError(f"batch_sizes must be positive integers, got {self.batch_sizes!r}")
    for name in ("input_len", "output_len", "trials", "prefill_batch"):
      if getattr(self, name) < 1:
        raise UserError(f"BenchConfig.{name} must be >= 1, got {getattr(self, name)!r}")
    if self.warmup < 0:
      raise UserError(f"BenchConfig.warmup must be >= 0, got {self.warmup!r}")
    if self.dtype not in _BYTES:
      raise UserError(f"BenchConfig.dtype must be one of {tuple(_BYTES)}, got {self.dtype!r}")


def detect_hardware() -> cost.Hardware | None:
  """The `cost.HARDWARE` entry of the default device, or None (CPU, or a chip not in the table)."""
  return cost.hardware_for_device(jax.devices()[0].device_kind)


def decode_bytes(arch: ArchSpec, batch: int, input_len: int, output_len: int,
                 bytes_per_element: float) -> float:
  """HBM bytes the output_len - 1 decode steps must read: weights + filled KV cache, per step.

  Step i (1-based) attends over input_len + i positions (the new token's K/V included).
  """
  steps = output_len - 1
  kv_positions = steps * input_len + steps * (steps + 1) / 2
  return (steps * cost.weight_bytes_read_per_step(arch, bytes_per_element)
          + batch * kv_positions * cost.kv_cache_bytes_per_token(arch, bytes_per_element))


def _timed(fn, *args):
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0


def run_batch(engine: Engine, cfg: BenchConfig, batch: int,
              hw: cost.Hardware | None) -> dict:
  """Measures one batch size; returns a flat record (seconds, tokens/s, bytes/s)."""
  rng = np.random.default_rng(cfg.seed + batch)
  tokens = jnp.asarray(rng.integers(0, cfg.arch.vocab_size, (batch, cfg.input_len)), jnp.int32)
  lengths = jnp.full((batch,), cfg.input_len, jnp.int32)
  key = jax.random.key(cfg.seed)

  t0 = time.perf_counter()
  prefill = engine.prefill.lower(engine.state, tokens, lengths).compile()
  logits, cache = jax.eval_shape(engine.prefill, engine.state, tokens, lengths)
  decode = engine.decode.lower(engine.state, logits, cache, key).compile()
  compile_s = time.perf_counter() - t0

  def call():
    (logits, cache), t_pre = _timed(prefill, engine.state, tokens, lengths)
    (out, _), t_dec = _timed(decode, engine.state, logits, cache, key)
    if int(out.num_tokens.min()) != cfg.output_len:
      raise RuntimeError(f"a request produced {int(out.num_tokens.min())} tokens, not "
                         f"{cfg.output_len}")
    return t_pre, t_dec

  for _ in range(cfg.warmup):
    call()
  trials = [call() for _ in range(cfg.trials)]
  prefill_s = statistics.mean(t for t, _ in trials)
  decode_s = statistics.mean(t for _, t in trials)
  total_s = prefill_s + decode_s
  bpe = _BYTES[cfg.dtype]
  dec_bytes = decode_bytes(cfg.arch, batch, cfg.input_len, cfg.output_len, bpe)
  rec = dict(
      batch=batch, input_len=cfg.input_len, output_len=cfg.output_len, trials=cfg.trials,
      compile_s=compile_s, prefill_s=prefill_s, decode_s=decode_s, total_s=total_s,
      total_s_min=min(p + d for p, d in trials), total_s_max=max(p + d for p, d in trials),
      prefill_share=prefill_s / total_s,
      output_tokens_per_s=batch * cfg.output_len / total_s,
      total_tokens_per_s=batch * (cfg.input_len + cfg.output_len) / total_s,
      requests_per_s=batch / total_s,
      decode_tokens_per_s=batch * (cfg.output_len - 1) / decode_s if cfg.output_len > 1 else None,
      decode_bytes_per_s=dec_bytes / decode_s if cfg.output_len > 1 else None,
      prefill_flops_per_s=batch * cost.prefill_flops(cfg.arch, cfg.input_len) / prefill_s,
  )
  if hw is not None:
    roof = cost.roofline_throughput(cfg.arch, hw, batch, cfg.input_len, cfg.output_len,
                                    bytes_per_element=bpe)
    rec.update(
        hardware=hw.name,
        mbu=rec["decode_bytes_per_s"] / hw.hbm_bandwidth if rec["decode_bytes_per_s"] else None,
        mfu_prefill=rec["prefill_flops_per_s"] / hw.peak_flops,
        roofline_output_tokens_per_s=roof.output_tokens_per_s,
        fraction_of_roofline=(rec["output_tokens_per_s"] / roof.output_tokens_per_s
                              if roof.fits else None))
  return rec


def memory_needed(cfg: BenchConfig, batch: int) -> float:
  """Bytes one batch of the benchmark holds at its peak: the weights, the batch's KV cache, and
  the prefill's attention scores where the attention materialises them (all but cuDNN's)."""
  bpe = _BYTES[cfg.dtype]
  max_len = cache_length(cfg.input_len, cfg.output_len)
  prefill_batch = min(cfg.prefill_batch, batch)
  scores = 0 if cfg.attention_impl == "cudnn" else (
      prefill_batch * cfg.arch.n_heads * cfg.input_len ** 2 * 4)
  return (cost.weight_bytes(cfg.arch, bpe) + batch * max_len *
          cost.kv_cache_bytes_per_token(cfg.arch, bpe) + scores)


def run(cfg: BenchConfig, hw: cost.Hardware | None = None, log=print) -> list[dict]:
  """Builds the model with random weights and measures every batch size; refuses up front a
  batch that cannot fit in the device's memory (`memory_needed`)."""
  available = loop.device_memory()
  for batch in cfg.batch_sizes:
    need = memory_needed(cfg, batch)
    if need > 0.9 * available:
      raise UserError(
          f"batch {batch} with a {cfg.input_len}-token prompt and {cfg.output_len} new tokens "
          f"needs ~{need / 2**30:.3g} GiB ({cfg.attention_impl} prefill attention), more than "
          f"90% of the device's {available / 2**30:.3g} GiB; shorten --input-len, lower --batch "
          "or --prefill-batch")
  hw = hw or detect_hardware()
  max_len = cache_length(cfg.input_len, cfg.output_len)
  model = build(ModelConfig(arch=cfg.arch, max_seq_len=max_len, dtype=cfg.dtype,
                            param_dtype=cfg.dtype, attention_impl=cfg.attention_impl,
                            decode_impl=cfg.decode_impl), seed=cfg.seed)
  rows = []
  for batch in cfg.batch_sizes:
    prefill_batch = max(d for d in range(1, min(cfg.prefill_batch, batch) + 1) if batch % d == 0)
    engine = Engine(model, max_new_tokens=cfg.output_len, sampling=Sampling(ignore_eos=True),
                    prefill_batch=prefill_batch)
    rows.append(run_batch(engine, cfg, batch, hw))
    log(json.dumps(rows[-1]))
  return rows


# -- the stage -----------------------------------------------------------------------------------
# The protocol's sizes and decode kernel where a setting is not given: the paper's (PAPER.md
# section 2), and on CPU a smaller one that runs in seconds with the XLA decode.
DEFAULTS = {"paper": dict(batch_sizes=(1, 8, 32, 64), input_len=4096, output_len=1024,
                          decode_impl="pallas"),
            "cpu": dict(batch_sizes=(1, 4), input_len=128, output_len=32, decode_impl="xla")}
COLUMNS = ["name", "batch", "input_len", "output_len", "output_tokens_per_s", "total_tokens_per_s",
           "requests_per_s", "decode_tokens_per_s", "prefill_s", "decode_s", "compile_s", "mbu",
           "roofline_output_tokens_per_s", "fraction_of_roofline"]


@dataclasses.dataclass(frozen=True)
class BenchResult:
  """What `measure` found: one record per (architecture, batch size)."""

  records: list[dict]             # name, the ArchSpec fields, then `run_batch`'s record
  device: str                     # the JAX device kind measured on
  hardware: cost.Hardware | None  # the chip of MBU and the roofline; None: not in cost.HARDWARE
  trials: int

  def summary(self) -> str:
    """The records as a table under a line naming the chip and protocol."""
    lines = [f"generation throughput on {self.hardware.name if self.hardware else self.device} "
             f"(random weights, exact output length, mean of {self.trials} trials; compile "
             "excluded)", format_table(self.records, COLUMNS)]
    if self.hardware is None:
      lines.append(f"mbu and roofline left blank: {self.device} is not a chip in "
                   "lawsearch.cost.HARDWARE; pass --hardware NAME to compare with one")
    return "\n".join(lines)


def settings(backend: str, **given) -> dict:
  """BenchConfig's fields but `arch` on a JAX backend: those given, the rest `DEFAULTS`; dtype
  and attention_impl "auto" resolved (`resolve_dtype`, `resolve_impl`). Raises for the Pallas
  decode kernel on CPU."""
  cpu = backend == "cpu"
  out = {**DEFAULTS["cpu" if cpu else "paper"],
         **{k: v for k, v in given.items() if v is not None}}
  if cpu and out["decode_impl"] == "pallas":
    raise UserError("--decode-impl pallas: the Pallas decode kernel runs on GPU or TPU, not on "
                    "this CPU; use --decode-impl xla")
  out["batch_sizes"] = tuple(out["batch_sizes"])
  out["dtype"] = resolve_dtype(out.get("dtype", "auto"), backend)
  out["attention_impl"] = resolve_impl(out.get("attention_impl", "auto"), backend, out["dtype"])
  return out


def measure(specs: Mapping[str, ArchSpec] | Sequence[tuple[str, ArchSpec]], hardware: cost.Hardware | str | None = None,
            log=lambda _: None, **given) -> BenchResult:
  """The bench stage: each named architecture's generation throughput in the paper's protocol.

  specs: name -> ArchSpec, or (name, ArchSpec) pairs, measured in order. hardware: the chip to compare with (a
  `cost.HARDWARE` name or entry; None: the device's, if listed). given: BenchConfig's fields but
  `arch` (None: `settings`' default for this backend). log: called with each record's JSON.
  """
  config = settings(jax.default_backend(), **given)
  hw = cost.hardware(hardware) if isinstance(hardware, str) else hardware or detect_hardware()
  records = [{"name": name, **spec.fields(), **r}  # the shape, so a search can look runs up
             for name, spec in (specs.items() if isinstance(specs, Mapping) else specs)
             for r in run(BenchConfig(arch=spec, **config), hw, log=log)]
  return BenchResult(records, jax.devices()[0].device_kind, hw,
                     config.get("trials", BenchConfig.trials))
