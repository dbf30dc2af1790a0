"""MFU of the train step on one GPU: llama3.2-1b and s80m at sequence 2048 in bfloat16.

    python experiments/gpu_mfu.py                 # on the GPU machine (H100 target: >= 40% for 1B)
    python experiments/gpu_mfu.py --smoke         # CPU check of the script itself (nano, seq 64)

The step is lawsearch's own (lawsearch.train.step: AdamW, clipping, float32 params, bfloat16
compute, causal attention by jax.nn.dot_product_attention with the chosen implementation) on
synthetic tokens. For each model the largest batch from the candidates whose compiled program
fits in 90% of device memory (XLA's memory_analysis) is used. MFU = tokens/s * FLOPs per token
(lawsearch.train.metrics: 6(N + dV) + 12 L d_q T, PaLM appendix B) / peak (lawsearch.cost.HARDWARE).
Repeats: 3 timed windows of `--steps` steps each, median reported. Imports no grain/ml_collections.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import traceback

import jax
import jax.numpy as jnp

from lawsearch.arch import preset
from lawsearch.model import ModelConfig
from lawsearch.train import metrics, optimizer
from lawsearch.train import step as step_lib


def bench(name: str, seq_len: int, batches: list[int], impl: str, dtype: str, steps: int,
          peak: float | None) -> dict:
  spec = preset(name)
  model = step_lib.Model(ModelConfig(spec, max_seq_len=seq_len, dtype=dtype,
                                     attention_impl=impl))
  tx, schedule = optimizer.from_config(
      dict(peak_lr=1e-4, warmup_steps=10, final_lr_fraction=0.1, b1=0.9, b2=0.95, eps=1e-8,
           weight_decay=0.1, clip_norm=1.0), 10_000)
  init = jax.jit(step_lib.make_init(model, tx, seed=0))
  train_step = jax.jit(step_lib.make_train_step(model, tx, schedule), donate_argnums=0)
  abstract = jax.eval_shape(init)
  limit = 0.9 * (jax.devices()[0].memory_stats() or {}).get("bytes_limit", float("inf"))
  for batch in batches:
    tok = jax.ShapeDtypeStruct((batch, seq_len), jnp.int32)
    t0 = time.perf_counter()
    compiled = train_step.lower(abstract, {"inputs": tok, "targets": tok}).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    need = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
            + mem.temp_size_in_bytes) if mem is not None else 0
    if need <= limit:
      break
    print(f"  {name} batch {batch}: needs {need / 2**30:.1f} GiB > {limit / 2**30:.1f}; smaller",
          flush=True)
  state = init()
  key = jax.random.key(0)
  data = jax.random.randint(key, (batch, seq_len + 1), 0, spec.vocab_size)
  batch_arrays = {"inputs": data[:, :-1], "targets": data[:, 1:]}
  for _ in range(3):  # warmup
    state, m = compiled(state, batch_arrays)
  jax.block_until_ready(m)
  times = []
  for _ in range(3):
    t0 = time.perf_counter()
    for _ in range(steps):
      state, m = compiled(state, batch_arrays)
    jax.block_until_ready((state, m))
    times.append((time.perf_counter() - t0) / steps)
  step_s = statistics.median(times)
  tps = batch * seq_len / step_s
  fpt = metrics.train_flops_per_token(spec, seq_len)
  out = dict(model=name, seq_len=seq_len, batch=batch, attention_impl=impl, dtype=dtype,
             step_s=step_s, step_s_all=times, tokens_per_s=tps, flops_per_token=fpt,
             model_tflops_per_s=tps * fpt / 1e12, compile_s=compile_s,
             mem_gib=need / 2**30, loss=float(m["loss"]), total_params=spec.total_params,
             non_embedding_params=spec.non_embedding_params)
  if peak:
    out["mfu"] = metrics.mfu(tps, fpt, peak, 1)
  print(json.dumps(out), flush=True)
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--smoke", action="store_true", help="tiny CPU run of this script")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--impl", default="cudnn", help="attention implementation: cudnn | xla")
  parser.add_argument("--out", default=os.environ.get("OUT", "."))
  args = parser.parse_args()
  dev = jax.devices()[0]
  peak = metrics.peak_flops(dev.device_kind)
  print(f"device: {dev.device_kind}, jax {jax.__version__}, peak bf16 {peak}", flush=True)
  if args.smoke:
    runs = [("nano", 64, [4], "xla", "float32")]
  else:
    runs = [("llama3.2-1b", 2048, [8, 6, 4], args.impl, "bfloat16"),
            ("s80m", 2048, [16, 8], args.impl, "bfloat16")]
  results = []
  for name, seq, batches, impl, dtype in runs:
    try:
      results.append(bench(name, seq, batches, impl, dtype, args.steps, peak))
    except Exception:  # pylint: disable=broad-except
      print(f"{name} with attention_impl={impl} FAILED:\n{traceback.format_exc()[-3000:]}")
      if impl != "xla":
        print(f"{name}: measuring attention_impl=xla instead (reported as such)", flush=True)
        results.append(bench(name, seq, batches, "xla", dtype, args.steps, peak))
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "gpu_mfu.json"), "w") as f:
    json.dump({"device": dev.device_kind, "jax": jax.__version__, "results": results}, f, indent=1)
  for r in results:
    print(f"{r['model']:12s} seq {r['seq_len']} batch {r['batch']:2d} {r['attention_impl']:5s}: "
          f"{r['tokens_per_s']:,.0f} tokens/s, {r['model_tflops_per_s']:.0f} TFLOP/s, "
          f"MFU {r.get('mfu', float('nan')):.1%}")


if __name__ == "__main__":
  main()
