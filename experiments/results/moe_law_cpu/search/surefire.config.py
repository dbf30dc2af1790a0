"""surefire: surefire of `lawsearch search` (N = 3.2e+05, D = 6.4e+06)

Train it (from any directory, with lawsearch installed):
  lawsearch train --config=/work/main/experiments/results/moe_law_cpu/search/surefire.config.py:recipe=paper --workdir runs/surefire
The arg is lawsearch/configs/train.py's (recipe=..., data=..., runlocal); the shape is surefire.arch.json.
"""

import os

from lawsearch import configs
from lawsearch.configlib import load

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_CONFIG = os.environ.get("LAWSEARCH_TRAIN_CONFIG", configs.TRAIN)


def get_config(arg=None):
  arch_arg = "arch=" + os.path.join(HERE, 'surefire.arch.json')
  return load(TRAIN_CONFIG + ":" + ",".join(filter(None, [arch_arg, arg])))
