"""Decode throughput on CPU: lawsearch's compiled generate against Hugging Face transformers'
`generate` on PyTorch CPU, same tiny architecture (same weights), batch and lengths, in one run.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/bench_decode_cpu.py [--preset tiny] \
        [--batch 1 4 16] [--input-len 128] [--output-len 64] [--trials 5] [--peer-threads 1 2]

Needs the `peer` extra (torch CPU build, transformers). Both sides: float32, greedy, exactly
output_len new tokens, one warm-up then `trials` timed calls, medians. Decode time = generate time
minus prefill time (the peer's prefill is timed as a generate of one token). The weights of the
lawsearch model are copied into the transformers model and the two forward passes are compared
first, so both sides compute the same function.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers
from flax import nnx

from lawsearch import hostmem
from lawsearch.arch import preset
from lawsearch.hf import hf_config, weights
from lawsearch.model import ModelConfig, build
from lawsearch.model.attention import resolve_impl
from lawsearch.model.generate import Engine, Sampling, cache_length


def hf_model(model) -> transformers.PreTrainedModel:
  """A transformers model with the lawsearch model's shape and weights: the class and tensors
  `lawsearch export-hf` writes (lawsearch.hf)."""
  cfg = model.config
  hf = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**hf_config(
      cfg.arch, rope_theta=cfg.rope_theta, norm_eps=cfg.norm_eps,
      max_position_embeddings=cfg.max_seq_len, dtype="float32")))
  tensors = weights.to_hf(nnx.to_pure_dict(nnx.state(model, nnx.Param)), cfg.arch)
  missing, unexpected = hf.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()},
                                           strict=False)
  missing = [m for m in missing if m != "lm_head.weight" or not cfg.arch.tie_embeddings]
  if missing or unexpected:
    raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
  return hf.eval()


def compare(model, hf, b: int, n_in: int, n_out: int, trials: int,
            peer_threads: list[int]) -> list[tuple]:
  """Interleaved trials of lawsearch and the peer at one batch size; rows of
  (name, prefill s, total s, decode tokens/s, output tokens/s, [decode s of each trial]), medians
  but the last."""
  spec = model.config.arch
  tokens = np.random.default_rng(b).integers(0, spec.vocab_size, (b, n_in)).astype(np.int32)
  # lawsearch: compiled prefill, then the decode loop as one compiled call.
  engine = Engine(model, max_new_tokens=n_out, sampling=Sampling(ignore_eos=True))
  tok, lens, key = jnp.asarray(tokens), jnp.full((b,), n_in, jnp.int32), jax.random.key(0)
  contenders = {"lawsearch (jax)": {
      "prefill": lambda: jax.block_until_ready(engine.prefill(engine.state, tok, lens)),
      "total": lambda: jax.block_until_ready(engine.generate(tok, lens, key))}}
  # Peer: transformers generate, greedy, forced length (min_new_tokens), KV cache on.
  ids, mask = torch.from_numpy(tokens).long(), torch.ones((b, n_in), dtype=torch.long)

  def hf_generate(n, threads):
    torch.set_num_threads(threads)
    with torch.inference_mode():
      return hf.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                         do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True)
  for threads in peer_threads:  # the peer's fastest thread count counts
    contenders[f"transformers, {threads} thread(s)"] = {
        "prefill": lambda t=threads: hf_generate(1, t),
        "total": lambda t=threads: hf_generate(n_out, t)}
  ours_tokens = np.asarray(engine.generate(tok, lens, key).tokens)
  same = ours_tokens == hf_generate(n_out, 1)[:, n_in:].numpy()
  times = {(name, part): [] for name in contenders for part in ("prefill", "total")}
  for trial in range(trials + 1):  # the first round is the warm-up
    for name, fns in contenders.items():  # interleaved, so outside load hits all alike
      for part, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        if trial:
          times[name, part].append(time.perf_counter() - t0)
  rows = []
  for name in contenders:
    pre, total = (statistics.median(times[name, p]) for p in ("prefill", "total"))
    per_trial = [t - p for p, t in zip(times[name, "prefill"], times[name, "total"])]
    rows.append((name, pre, total, b * (n_out - 1) / (total - pre), b * n_out / total, per_trial))
  return rows, float(same.mean())


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--preset", default="tiny")
  parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
  parser.add_argument("--input-len", type=int, default=128)
  parser.add_argument("--output-len", type=int, default=64)
  parser.add_argument("--trials", type=int, default=5)
  parser.add_argument("--peer-threads", type=int, nargs="+", default=[1],
                      help="torch thread counts to try (2 ran 5-20x slower than 1 on a shared "
                           "2-core machine)")
  args = parser.parse_args()
  hostmem.keep_freed_memory()  # as the CLI does; one process, so the peer gets it too
  spec, n_in, n_out = preset(args.preset), args.input_len, args.output_len
  model = build(ModelConfig(arch=spec, max_seq_len=cache_length(n_in, n_out),
                            attention_impl=resolve_impl("auto", jax.default_backend(), "float32")),
                seed=0)
  hf = hf_model(model)

  # Same function: forward logits agree.
  probe = np.random.default_rng(0).integers(0, spec.vocab_size, (2, 32)).astype(np.int32)
  ours_logits = np.asarray(jax.jit(model.__call__)(jnp.asarray(probe)))
  with torch.inference_mode():
    hf_logits = hf(torch.from_numpy(probe).long()).logits.numpy()
  err = np.abs(ours_logits - hf_logits).max() / np.abs(hf_logits).max()
  print(f"{args.preset}: {spec}\nforward logits, max relative difference lawsearch vs HF: "
        f"{err:.2e}")
  if err > 1e-4:
    raise RuntimeError("the two models differ; the comparison would be meaningless")
  print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
        f"jax {jax.__version__}; {n_in} input + {n_out} output tokens, float32, greedy, "
        f"{os.cpu_count()} CPUs; median of {args.trials} interleaved trials after 1 warm-up")
  summary = []
  for b in args.batch:
    rows, same = compare(model, hf, b, n_in, n_out, args.trials, args.peer_threads)
    peer = max(rows[1:], key=lambda r: r[4])
    print(f"\nbatch {b} (load average {os.getloadavg()[0]:.1f}; greedy tokens equal at {same:.0%})")
    print(f"  {'':32s} {'prefill s':>9s} {'total s':>8s} {'decode tok/s':>12s} "
          f"{'output tok/s':>12s}")
    for name, pre, total, dec, out, _ in rows:
      print(f"  {name:32s} {pre:9.3f} {total:8.3f} {dec:12.1f} {out:12.1f}")
    trial_ratios = [p / o for o, p in zip(rows[0][5], peer[5])]  # same trial, same outside load
    summary.append((b, rows[0][3] / peer[3], rows[0][4] / peer[4], trial_ratios))
  print("\nlawsearch / transformers (its fastest thread count):")
  for b, dec, out, trial_ratios in summary:
    print(f"  batch {b:3d}: decode tokens/s {dec:.2f}x (trials {min(trial_ratios):.2f}-"
          f"{max(trial_ratios):.2f}x), output tokens/s {out:.2f}x")


if __name__ == "__main__":
  main()
