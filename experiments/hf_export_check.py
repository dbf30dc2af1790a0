"""A trained run through `lawsearch export-hf` into transformers, checked by its outputs.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/hf_export_check.py \
        --workdir experiments/results/cpu_replication/heldout/N0.595M-d184-f216-h4x1-ae1e44cf787b \
        --out /tmp/surefire-hf [--new-tokens 32]

Exports the run's newest checkpoint (lawsearch.hf.export_hf), loads the directory with
AutoModelForCausalLM (float32, CPU torch) and AutoTokenizer, and prints: whether the two tokenizers
give the same ids for a prompt, the greedy continuation of each side (lawsearch's compiled KV-cache
engine, transformers' `generate`), and the largest |logit difference| over the prompt plus the
continuation. Needs the test extra (torch CPU build, transformers). The exported weights are not
part of the repository; write them outside it.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from lawsearch import hostmem
from lawsearch.data import tokens
from lawsearch.hf import bridge
from lawsearch.model.generate import Engine, Sampling
from lawsearch.train import evaluate, loop
from lawsearch.train import step as step_lib

PROMPT = "The history of the city begins in the early years of the nineteenth century, when"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--new-tokens", type=int, default=32)
  args = parser.parse_args()
  hostmem.keep_freed_memory()

  done = bridge.export_hf(args.workdir, args.out)
  config = evaluate.run_config(args.workdir)
  model_config = loop.model_config(config, "cpu")
  ckpt = loop.run_checkpointer(config, args.workdir)
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  params, step = ckpt.restore_params(bridge._abstract_params(model_config, sharding), done.step)  # pylint: disable=protected-access
  ckpt.close()
  model = step_lib.Model(model_config)

  tok = tokens.run_tokenizer(config.data)
  hf_tok = transformers.AutoTokenizer.from_pretrained(args.out)
  ids = tok.encode(PROMPT)
  hf = transformers.AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32).eval()

  engine = Engine(model.module(params), max_new_tokens=args.new_tokens,
                  sampling=Sampling(ignore_eos=True))
  ours = np.asarray(engine.generate(jnp.asarray([ids]), jnp.asarray([len(ids)]),
                                    jax.random.key(0)).tokens[0]).tolist()
  with torch.no_grad():
    theirs = hf.generate(torch.tensor([ids]), max_new_tokens=args.new_tokens, do_sample=False,
                         min_new_tokens=args.new_tokens)[0, len(ids):].tolist()
    full = np.array([ids + ours])
    logits = hf(torch.tensor(full)).logits.numpy()
  diff = np.abs(np.asarray(model.apply(params, jnp.asarray(full))) - logits)
  print(f"{args.workdir} step {step} -> {args.out} ({type(hf).__name__}, "
        f"{done.n_params:,} parameters)")
  print(f"tokenizer ids equal: {hf_tok(PROMPT).input_ids == ids} ({len(ids)} prompt tokens)")
  print(f"greedy continuations equal: {ours == theirs} ({args.new_tokens} tokens)")
  print(f"  lawsearch:    {tok.decode(ours)!r}")
  print(f"  transformers: {tok.decode(theirs)!r}")
  print(f"max |logit difference| over {full.shape[1]} positions: {diff.max():.2e} "
        f"(largest |logit| {np.abs(logits).max():.1f})")


if __name__ == "__main__":
  main()
