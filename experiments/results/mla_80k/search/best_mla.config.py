"""best_mla: the best MLA shape of `lawsearch search --attention gqa,mla`

Train it (from any directory, with lawsearch installed):
  lawsearch train --config=experiments/results/mla_80k/search/best_mla.config.py:recipe=paper --workdir runs/best_mla
The arg is lawsearch/configs/train.py's (recipe=..., data=..., runlocal); the shape is best_mla.arch.json.
"""

import os

from lawsearch import configs
from lawsearch.configlib import load

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_CONFIG = os.environ.get("LAWSEARCH_TRAIN_CONFIG", configs.TRAIN)


def get_config(arg=None):
  arch_arg = "arch=" + os.path.join(HERE, 'best_mla.arch.json')
  return load(TRAIN_CONFIG + ":" + ",".join(filter(None, [arch_arg, arg])))
