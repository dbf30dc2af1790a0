"""A training sweep over architectures: `lawsearch sweep --config=configs/sweep.py:ARG --root DIR`.

Every run is a `configs/train.py` run with its own directory under --root, named by a hash of its
config: a finished run is skipped and an interrupted one resumes, so the same command continues
a sweep. `lawsearch fit --runs DIR` then fits the laws on the results.

ARG (comma-separated, all optional):
  recipe=paper           the named recipe: its scales, sweep design and grids, tokens, learning
                         rates (lawsearch/recipe.py); recipe=cpu is the CPU replication's,
                         cpu_v2 its v2, gpu_v2 v2's design 25x larger for one accelerator
  scales=80M+145M+297M   which of the recipe's scales ('+'-separated; default: its fitting scales)
  x=0.05+0.08+0.125      target d/sqrt(N) (default: the recipe's grid)
  r=1+2+4                target MLP-to-attention ratios (default: the recipe's grid)
  shapes=sweep           which shapes per scale, '+'-separated: sweep (the recipe's grid) and/or
                         baseline (LLaMA-3.2-1B's d/sqrt(N) = 0.066, r = 4.8 and GQA 4 at the
                         scale's N and depth)
  arch=a.json+b.json     instead of shapes: these ArchSpec files (`lawsearch search` writes them)
  attention=mla,kv_lora_rank=32   the sweep's shapes with multi-head latent attention of that
                         latent rank (q_lora_rank=0 unless given) at the same (x, r) targets
                         (recipe.mla_dims: head widths from the recipe)
  moe=8x1+8x2            each shape also as mixtures of experts of its active size, E x G:
                         E experts of width ffn_dim / G, top-k = G (arch.mixture; G < E)
  dense=0                with moe=: only the mixtures, not the dense shapes themselves (their
                         runs already exist elsewhere, e.g. a dense sweep of the same recipe)
  seeds=1                initialisation seeds per shape (0, 1, ...; the data order stays fixed)
  lr=0.5+0.71+1+1.41+2   a learning-rate scan: every run at each multiple of its peak LR (the
                         run directories' names end in -lr<multiple>)
  data=default           every run's data source (as configs/train.py)
  runlocal               a CPU smoke sweep: budgets of 1M and 2M in 2 layers, head_dim 32, the
                         corpus's 4,096-token vocabulary, configs/train.py's runlocal (20 steps)

Examples:
  lawsearch sweep --config=configs/sweep.py:runlocal --root runs/smoke
  lawsearch sweep --config=configs/sweep.py:scales=80M,r=1+2+4 --root runs/80m --dry-run
  lawsearch sweep --config=configs/sweep.py:recipe=cpu --root runs/cpu/fit      # 34 runs
  lawsearch sweep --config=configs/sweep.py:recipe=cpu,scales=600k,shapes=baseline,seeds=2 ...
  lawsearch sweep --config=configs/sweep.py:recipe=cpu,scales=80k,attention=mla,kv_lora_rank=32,\
      x=0.08+0.1+0.13+0.17,r=1.5+3 --root runs/cpu/mla               # 6 MLA runs
Cost: the paper recipe's 80M/145M/297M grids are 109 runs of 100 N tokens each (6.2e21 training
FLOPs with the output head: `lawsearch sweep --dry-run` prints it with cluster times); runlocal
is 7 runs of 20 steps, about 2 minutes on 2 CPU cores; the cpu recipe's fitting sweep is 34
runs, about 50 minutes on 2 cores as two `--shard` workers.
"""

import os

import ml_collections

from lawsearch import arch
from lawsearch.configlib import parse_arg
from lawsearch.errors import UserError
from lawsearch.recipe import recipe as get_recipe

TRAIN_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
LOCAL_SCALES = ((1e6, 2), (2e6, 2))  # runlocal: (N, layers), head_dim 32, vocabulary 4096
LOCAL_HEAD_DIM, LOCAL_VOCAB = 32, 4096


def _floats(text: str, default) -> tuple[float, ...]:
  return tuple(float(v) for v in text.split("+")) if text else tuple(default)


def _recipe_runs(rec, arg) -> list[str]:
  """configs/train.py ARGs (without seed) of the recipe's shapes at the chosen scales."""
  runs = []
  for scale in (arg.scales.split("+") if arg.scales else rec.fit_scales):
    n_params, n_layers = rec.scale(scale)
    mla = (rec.mla_dims(n_params, arg.kv_lora_rank, arg.q_lora_rank)
           if arg.attention == "mla" else None)
    shapes = []
    for kind in arg.shapes.split("+"):
      if kind == "sweep":
        shapes += [(r, spec) for _, r, spec in rec.sweep_shapes(scale, _floats(arg.x, ()),
                                                                _floats(arg.r, ()), mla=mla)]
      elif kind == "baseline" and mla is not None:
        raise UserError("shapes=baseline is a GQA shape; drop attention=mla or use shapes=sweep")
      elif kind == "baseline":
        shapes.append((rec.baseline_r, rec.baseline(scale)))
      else:
        raise UserError(f"shapes={kind!r} is unknown; use sweep, baseline or sweep+baseline")
    for r, spec in shapes:
      kind = (f"attention=mla,kv_lora_rank={spec.kv_lora_rank},q_lora_rank={spec.q_lora_rank}"
              if mla else f"gqa={spec.gqa},head_dim={spec.head_dim}")
      run = (f"params={n_params:g},layers={n_layers},d_model={spec.d_model},r={r:g},"
             f"{kind},data={arg.data},recipe={rec.name}")
      runs += [run] * arg.dense + [f"{run},experts={e},granularity={g}"
                                   for e, g in _mixtures(arg.moe)]
  return runs


def _mixtures(text: str) -> list[tuple[int, int]]:
  """(experts, granularity) pairs of moe=8x1+16x2 ([] when empty)."""
  try:
    pairs = [tuple(int(v) for v in item.split("x")) for item in text.split("+")] if text else []
  except ValueError:
    pairs = [()]
  if any(len(p) != 2 or not 1 <= p[1] < p[0] for p in pairs):
    raise UserError(f"moe={text}: give experts x granularity pairs with 1 <= granularity < "
                    "experts, '+'-separated, e.g. moe=8x1+16x2")
  return pairs


def get_config(arg=None):
  arg = parse_arg(arg, recipe="paper", scales="", x="", r="", shapes="sweep", arch="", seeds=1,
                  data="default", attention="gqa", kv_lora_rank=0, q_lora_rank=0, moe="",
                  dense=1, lr="", runlocal=False)
  if arg.dense not in (0, 1) or not (arg.dense or arg.moe):
    raise UserError(f"dense={arg.dense}: give dense=1 (the default), or dense=0 together with "
                    "moe=ExG to train only the mixtures")
  if arg.attention not in ("gqa", "mla") or (arg.attention == "mla") != (arg.kv_lora_rank > 0):
    raise UserError(f"attention={arg.attention!r}, kv_lora_rank={arg.kv_lora_rank}: use "
                    "attention=gqa, or attention=mla with a positive kv_lora_rank")
  rec = get_recipe(arg.recipe)
  overrides = []
  if arg.runlocal:
    overrides = [f"model.arch.vocab_size={LOCAL_VOCAB}", f"data.vocab_size={LOCAL_VOCAB}"]
    runs = [f"params={n_params:g},layers={n_layers},d_model={spec.d_model},r={r:g},"
            f"gqa={rec.sweep_gqa},head_dim={LOCAL_HEAD_DIM},data={arg.data},runlocal"
            for n_params, n_layers in LOCAL_SCALES
            for _, r, spec in arch.sweep_grid(
                n_params, n_layers=n_layers, head_dim=LOCAL_HEAD_DIM, gqa=rec.sweep_gqa,
                x_grid=_floats(arg.x, (0.06, 0.12)), r_grid=_floats(arg.r, (1.0, 3.0)))]
  elif arg.arch:
    runs = [f"arch={path},data={arg.data},recipe={rec.name}" for path in arg.arch.split("+")]
  else:
    runs = _recipe_runs(rec, arg)
  if arg.seeds < 1:
    raise UserError(f"seeds={arg.seeds}: give at least 1")
  runs = [run if arg.seeds == 1 else f"{run},seed={seed}" for run in runs
          for seed in range(arg.seeds)]
  scales = _floats(arg.lr, ())
  if any(not s > 0 for s in scales):
    raise UserError(f"lr={arg.lr}: give positive multiples of the peak LR, e.g. lr=0.5+1+2")
  runs = [f"{run},lr_scale={s:g}" for run in runs for s in scales] if scales else runs
  config = ml_collections.ConfigDict()
  config.train_config = TRAIN_CONFIG
  config.runs = runs  # one configs/train.py ARG per run
  config.overrides = overrides  # dotted overrides of every run's config ("train.steps=100")
  # `lawsearch sweep --slurm`: what each array task (one sweep worker) asks for
  # (lawsearch.train.slurm.SlurmResources; --config.slurm.time=2:00:00 and the like override it).
  config.slurm = dict(workers=2, nodes=1, tasks_per_node=1, gpus_per_node=0, cpus_per_task=1,
                      time="24:00:00", partition="", account="", max_concurrent=0)
  return config
