"""Train one model: `lawsearch train --config=configs/train.py:ARG --workdir runs/NAME`.

ARG (comma-separated, all optional):
  preset=tiny          a named ArchSpec (lawsearch arch --list), or
  arch=out/x.arch.json an ArchSpec JSON file (`lawsearch search` writes them), or
  params=80e6,layers=12,d_model=768,r=4,gqa=4   an ArchSpec built from a budget (arch.from_budget),
                       head_dim, GQA, vocabulary and ffn_dim step from the recipe (without one:
                       head_dim 64, LLaMA-3's vocabulary) unless head_dim=... or gqa=... is given
  attention=mla,kv_lora_rank=32   with params=...: multi-head latent attention of that latent
                       rank (q_lora_rank=0 and qk_rope_head_dim=head_dim/2 unless given; the
                       heads' no-RoPE and value widths are head_dim): arch.mla_from_budget
  experts=8,granularity=2   with params=...: that shape as a mixture of experts of the same
                       active size, 8 experts of width ffn_dim / 2, top-2 (arch.mixture); the
                       recipe then sizes tokens and LR by the active parameters
  recipe=paper         tokens = 100*N, LR per scale, seq 2048 (lawsearch/recipe.py); "" = none
                       recipe=cpu: the CPU replication's (tokens = 20 N, vocabulary 512, seq 128)
  data=default         data source: default | text | tokens | arrayrecord | synthetic
  seed=0               the initialisation's seed (the data order has its own, data.seed, so
                       seeds of one shape see the same token stream)
  lr_scale=1           multiplies the peak learning rate (the recipe's or the default): LR scans
  runlocal             shrink everything for a CPU smoke run (seconds)

Examples:
  lawsearch train --config=configs/train.py:preset=tiny --config.train.steps=200 --workdir runs/x
  lawsearch train --config=configs/train.py:preset=s80m,recipe=paper --workdir gs://b/runs/s80m
  lawsearch train --config=configs/train.py:preset=llama3.2-1b --aot-topology v5p-64
Cost: tiny, 200 steps of 8x128 tokens: about 4 minutes on 2 (busy) CPU cores, 1 s per step.
"""

import ml_collections

from lawsearch import arch
from lawsearch import configlib
from lawsearch.configlib import parse_arg
from lawsearch.errors import UserError
from lawsearch.recipe import recipe as get_recipe

# Logical axis -> mesh axes: the ONE sharding table (params, optimizer state, batch, activations).
# FSDP shards parameters over `fsdp` along d_model; tensor parallelism splits heads, the MLP and
# the vocabulary over `tensor`; the batch is split over `data` and `fsdp`.
# MoE expert stacks [E, D, F] are split whole over `fsdp`: E/fsdp experts per device, the memory
# of FSDP in the layout expert parallelism needs (their `embed` axis stays unsplit: a mesh axis is
# used once per array). XLA's partitioner decides the grouped matmul's communication (there is no
# explicit all-to-all token dispatch). An E that fsdp does not divide is not split over it (with a
# warning) and the stack is split along d_model instead, as a dense MLP's.
SHARDING_RULES = (
    ("vocab", "tensor"), ("embed", "fsdp"), ("heads", "tensor"), ("kv_heads", "tensor"),
    ("mlp", "tensor"), ("head_dim", None), ("norm", None),
    ("act_batch", ("data", "fsdp")), ("act_seq", None), ("act_embed", None),
    ("act_heads", "tensor"), ("act_kv_heads", "tensor"), ("act_mlp", "tensor"),
    ("act_vocab", "tensor"), ("q_lora", None), ("kv_lora", None),  # MLA's latents: replicated
    ("expert", "fsdp"),
)


def get_config(arg=None):
  arg = parse_arg(arg, preset="tiny", arch="", params=0.0, layers=0, d_model=0, r=0.0, gqa=0,
                  head_dim=0, attention="gqa", kv_lora_rank=0, q_lora_rank=0,
                  qk_rope_head_dim=0, experts=0, granularity=1, recipe="", data="default",
                  seed=0, lr_scale=1.0, runlocal=False)
  if not arg.lr_scale > 0:
    raise UserError(f"lr_scale={arg.lr_scale}: give a positive multiplier of the peak LR")
  rec = get_recipe(arg.recipe) if arg.recipe else None
  if arg.attention == "mla":
    if not (arg.params and rec and arg.kv_lora_rank):
      raise UserError("attention=mla needs params=..., recipe=... and kv_lora_rank=...")
    spec = rec.build(arg.params, n_layers=arg.layers, d_model=arg.d_model, r=arg.r,
                     mla=rec.mla_dims(arg.params, arg.kv_lora_rank, arg.q_lora_rank,
                                      arg.qk_rope_head_dim))
  elif arg.attention != "gqa":
    raise UserError(f"attention={arg.attention!r}: choose gqa or mla")
  elif arg.params and rec:
    spec = rec.build(arg.params, n_layers=arg.layers, d_model=arg.d_model, r=arg.r, gqa=arg.gqa,
                     head_dim=arg.head_dim)
  elif arg.params:
    spec = arch.from_budget(arg.params, n_layers=arg.layers, head_dim=arg.head_dim or 64,
                            d_model=arg.d_model, r=arg.r, gqa=arg.gqa)
  elif arg.arch:
    spec = arch.load_json(arg.arch)
  else:
    spec = arch.preset(arg.preset)
  if arg.experts:
    if not arg.params:
      raise UserError("experts=... needs params=... (a budget shape to turn into a mixture)")
    spec = arch.mixture(spec, arg.experts, arg.granularity)
  small = spec.vocab_size <= 4096

  config = ml_collections.ConfigDict()
  config.seed = arg.seed
  config.model = dict(
      preset="" if (arg.params or arg.arch) else arg.preset,  # the record; shape is model.arch
      arch=spec.fields(),
      max_seq_len=2048,
      rope_theta=500_000.0,  # LLaMA-3 (PAPER.md section 5, our choice)
      dtype="auto",  # "auto": bfloat16 on GPU/TPU, float32 on CPU
      param_dtype="float32",
      # "auto": grouped on CPU, cudnn on GPU in 16 bits, else xla | "xla" | "cudnn" | "grouped"
      attention_impl="auto",
      decode_impl="xla",
      remat=False,
  )
  config.train = dict(
      steps=1000,  # exactly one of steps / tokens > 0
      tokens=0,
      batch_size=8 if small else 256,  # global, in sequences
      seq_len=128 if small else 2048,
      grad_accum_steps=1,
      log_every=10,
      eval_every=200,  # held-out loss every this many steps (and at the end); 0 = only at the end
      eval_batches=8,
      checkpoint_every=200,
      keep_checkpoints=3,
      peak_flops=0.0,  # per-device peak FLOP/s for MFU; 0 = lawsearch.cost.HARDWARE by device
      # mlp="moe" only: weights of the MoE layers' auxiliary losses in the train loss
      moe_load_balance_weight=0.01,  # Switch Transformer (Fedus et al. 2021), OLMoE
      moe_z_loss_weight=0.001,  # router z-loss, ST-MoE (Zoph et al. 2022)
      # > 0: auxiliary-loss-free balancing (DeepSeek-V3: 0.001), each MoE layer's router bias
      # moved by this much per step towards its underloaded experts (lawsearch/model/moe.py)
      moe_bias_update_rate=0.0,
  )
  config.optimizer = dict(peak_lr=3e-3 if small else 1e-3, warmup_steps=0.01,  # <1: fraction
                          final_lr_fraction=0.1, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1,
                          clip_norm=1.0)
  config.mesh = dict(data=1, fsdp=-1, tensor=1)  # -1: all remaining devices
  config.sharding_rules = SHARDING_RULES
  config.distributed = dict(
      initialize="",  # "" single process | "auto" (TPU pods, SLURM) | "explicit" (fields below)
      coordinator_address="", num_processes=1, process_id=0, local_device_ids="")
  # Data: lawsearch/data (the `lawsearch data prepare` corpus by default); "synthetic" = random
  # tokens (no files; for benchmarks and tests).
  config.data = dict(
      source=arg.data, path="", tokenizer="bpe", vocab_size=spec.vocab_size, token_dtype="",
      heldout_fraction=0.01, cache_dir="", num_threads=2, prefetch=4,
      seed=0)  # the order of the training windows (the same for every run of a sweep)

  if rec:  # the named recipe: duration, learning rate, sequence length; a MoE's by its active N
    n = spec.active_non_embedding_params
    config.train.steps = 0
    config.train.tokens = rec.tokens(n)
    config.train.seq_len = rec.seq_len
    config.optimizer.peak_lr = rec.peak_lr(n, spec.d_over_sqrt_n_active)
    config.optimizer.warmup_steps = rec.warmup_fraction
    for item in rec.config_overrides:
      configlib.apply_override(config, item)
    if rec.min_steps:
      config.train.batch_size = rec.batch_size(n)

  config.optimizer.peak_lr *= arg.lr_scale

  if arg.runlocal:
    config.train.update(steps=20, tokens=0, batch_size=8, seq_len=64, log_every=5, eval_every=10,
                        eval_batches=2, checkpoint_every=10)
  return config
