"""Train-step tokens/s on CPU: lawsearch (JAX/Flax NNX) vs Hugging Face LlamaForCausalLM (PyTorch).

    .venv/bin/pip install -e '.[peer]'       # torch==2.13.0 (CPU build) + transformers
    JAX_PLATFORMS=cpu .venv/bin/python experiments/bench_train_cpu.py [--preset tiny]

Same architecture (head_dim set on the HF side so the attention width matches), batch, sequence
length, vocabulary, float32, tied embeddings, and the same update: AdamW(0.9, 0.95, wd 0.1) after
global-norm clipping at 1.0. Each side takes a full train step (forward, backward, clip, update)
on the same random tokens; the two are timed in alternation, `--repeats` windows of `--steps`
steps each, and the medians are compared. Target: lawsearch >= 1.3x the peer.
lawsearch runs as `lawsearch train` does on CPU: attention_impl="grouped" and
`hostmem.keep_freed_memory()` (which the peer, in the same process, gets as well);
`--attention-impl xla --malloc default` gives session 1's settings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def jax_step_fn(spec, seq_len: int, lr: float, attention_impl: str):
  import jax

  from lawsearch.model import ModelConfig
  from lawsearch.train import optimizer
  from lawsearch.train import step as step_lib

  model = step_lib.Model(ModelConfig(spec, max_seq_len=seq_len, dtype="float32",
                                     attention_impl=attention_impl))
  tx = optimizer.adamw(lambda _: lr)
  state = jax.jit(step_lib.make_init(model, tx, seed=0))()
  train_step = jax.jit(step_lib.make_train_step(model, tx, lambda _: lr), donate_argnums=0)
  box = [state]

  def run(batch):
    box[0], metrics = train_step(box[0], batch)
    return metrics

  return run, lambda m: jax.block_until_ready(m)


def torch_step_fn(spec, seq_len: int, lr: float):
  import torch
  from transformers import LlamaConfig, LlamaForCausalLM

  torch.manual_seed(0)
  config = LlamaConfig(vocab_size=spec.vocab_size, hidden_size=spec.d_model,
                       intermediate_size=spec.ffn_dim, num_hidden_layers=spec.n_layers,
                       num_attention_heads=spec.n_heads, num_key_value_heads=spec.n_kv_heads,
                       head_dim=spec.head_dim, max_position_embeddings=seq_len,
                       rope_theta=500_000.0, rms_norm_eps=1e-5,
                       tie_word_embeddings=spec.tie_embeddings,
                       attention_bias=False, mlp_bias=False, torch_dtype=torch.float32)
  config._attn_implementation = "sdpa"  # pylint: disable=protected-access
  model = LlamaForCausalLM(config).train()
  n = sum(p.numel() for p in model.parameters())
  assert n == spec.total_params, (n, spec.total_params)  # same architecture, same count
  opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)

  def run(batch):
    inputs, targets = batch
    logits = model(input_ids=inputs).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss

  return run, lambda loss: float(loss.detach())


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--preset", default="tiny")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--seq-len", type=int, default=256)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--torch-threads", type=int, default=0,
                      help="torch intra-op threads (0: all cores); 1 may be faster when busy")
  parser.add_argument("--attention-impl", default="grouped",
                      help="lawsearch's training attention (lawsearch.model.attention.IMPLS)")
  parser.add_argument("--malloc", choices=("keep", "default"), default="keep",
                      help="keep: lawsearch.hostmem.keep_freed_memory(), as the CLI does (it "
                      "applies to both sides: one process)")
  args = parser.parse_args()

  from lawsearch import hostmem
  if args.malloc == "keep":
    hostmem.keep_freed_memory()
  import jax
  import torch

  from lawsearch.arch import preset

  torch.set_num_threads(args.torch_threads or os.cpu_count())
  spec = preset(args.preset)
  rng = np.random.default_rng(0)
  window = rng.integers(0, spec.vocab_size, (args.batch, args.seq_len + 1), dtype=np.int32)
  jax_batch = {"inputs": jax.numpy.asarray(window[:, :-1]),
               "targets": jax.numpy.asarray(window[:, 1:])}
  torch_batch = (torch.from_numpy(window[:, :-1].astype(np.int64)),
                 torch.from_numpy(window[:, 1:].astype(np.int64)))
  ours = jax_step_fn(spec, args.seq_len, 1e-4, args.attention_impl)
  sides = {"lawsearch (jax)": (*ours, jax_batch),
           "hf llama (torch)": (*torch_step_fn(spec, args.seq_len, 1e-4), torch_batch)}
  # Warm-up (and compile), in alternation like the timed windows: the shared heap grows by
  # 270-550 MB (70-140k page faults) in each of the first few jax steps after either side has
  # run, until its free blocks fit both sides' buffers.
  for _ in range(3):
    for run, sync, batch in sides.values():
      for _ in range(2):
        sync(run(batch))
  times = {name: [] for name in sides}
  for _ in range(args.repeats):
    for name, (run, sync, batch) in sides.items():
      t0 = time.perf_counter()
      for _ in range(args.steps):
        out = run(batch)
      sync(out)
      times[name].append((time.perf_counter() - t0) / args.steps)
  tokens = args.batch * args.seq_len
  print(f"{args.preset}: {spec}; batch {args.batch} x seq {args.seq_len}, float32, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}; jax {jax.__version__}, "
        f"torch {torch.__version__}; attention {args.attention_impl}, malloc {args.malloc}")
  tps = {}
  for name, ts in times.items():
    tps[name] = tokens / statistics.median(ts)
    print(f"  {name:18s} {tps[name]:10,.0f} tokens/s  (median step "
          f"{statistics.median(ts) * 1e3:.1f} ms over {args.repeats} x {args.steps} steps)")
  a, b = tps.values()
  ours, peer = times.values()
  per_window = [p / o for o, p in zip(ours, peer)]  # adjacent windows, alike outside load
  print(f"  ratio lawsearch / peer: {a / b:.2f}x (windows {min(per_window):.2f}-"
        f"{max(per_window):.2f}x; target >= 1.3x)")


if __name__ == "__main__":
  main()
