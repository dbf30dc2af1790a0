"""A training sweep over architectures: `lawsearch sweep --config=configs/sweep.py:ARG --root DIR`.

Every run is a `configs/train.py` run with its own directory under --root, named by a hash of its
config: a finished run is skipped and an interrupted one resumes, so the same command continues
a sweep. `lawsearch fit --runs DIR` then fits the laws on the results.

ARG (comma-separated, all optional):
  recipe=paper           the named recipe: its scales, sweep grids, tokens = 100 N, learning rates
  scales=80M+145M+297M   which of the recipe's scales ('+'-separated)
  x=0.05+0.08+0.125      target d/sqrt(N) (default: the recipe's grid)
  r=1+2+4                target MLP-to-attention ratios (default: the recipe's grid)
  data=default           every run's data source (as configs/train.py)
  runlocal               a CPU smoke sweep: budgets of 1M and 2M in 2 layers, head_dim 32, the
                         corpus's 4,096-token vocabulary, configs/train.py's runlocal (20 steps)

Examples:
  lawsearch sweep --config=configs/sweep.py:runlocal --root runs/smoke
  lawsearch sweep --config=configs/sweep.py:scales=80M,r=1+2+4 --root runs/80m --dry-run
Cost: the paper recipe's 80M/145M/297M grids are 109 runs of 100 N tokens each (6ND: about
4.5e19 FLOPs); runlocal is 7 runs of 20 steps, about 2 minutes on 2 CPU cores.
"""

import os

import ml_collections

from lawsearch import arch
from lawsearch.configlib import parse_arg
from lawsearch.recipe import recipe as get_recipe

TRAIN_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
LOCAL_SCALES = ((1e6, 2), (2e6, 2))  # runlocal: (N, layers), head_dim 32, vocabulary 4096
LOCAL_HEAD_DIM, LOCAL_VOCAB = 32, 4096


def _floats(text: str, default) -> tuple[float, ...]:
  return tuple(float(v) for v in text.split("+")) if text else tuple(default)


def get_config(arg=None):
  arg = parse_arg(arg, recipe="paper", scales="80M+145M+297M", x="", r="", data="default",
                  runlocal=False)
  rec = get_recipe(arg.recipe)
  if arg.runlocal:
    scales, common, overrides = LOCAL_SCALES, "runlocal", [
        f"model.arch.vocab_size={LOCAL_VOCAB}", f"data.vocab_size={LOCAL_VOCAB}"]
    x_grid, r_grid = _floats(arg.x, (0.06, 0.12)), _floats(arg.r, (1.0, 3.0))
  else:
    scales = [rec.scale(name) for name in arg.scales.split("+")]
    common, overrides = f"recipe={rec.name}", []
    x_grid, r_grid = _floats(arg.x, rec.x_grid), _floats(arg.r, rec.r_grid)

  runs = []
  for n_params, n_layers in scales:
    head_dim = LOCAL_HEAD_DIM if arg.runlocal else rec.head_dim(n_params)
    for _, r, spec in arch.sweep_grid(n_params, n_layers=n_layers, head_dim=head_dim,
                                      gqa=rec.sweep_gqa, x_grid=x_grid, r_grid=r_grid):
      runs.append(f"params={n_params:g},layers={n_layers},d_model={spec.d_model},r={r:g},"
                  f"gqa={rec.sweep_gqa},head_dim={head_dim},data={arg.data},{common}")
  config = ml_collections.ConfigDict()
  config.train_config = TRAIN_CONFIG
  config.runs = runs  # one configs/train.py ARG per run
  config.overrides = overrides  # dotted overrides of every run's config ("train.steps=100")
  return config
