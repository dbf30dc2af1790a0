"""The ml-collections configs, inside the package so that an installed lawsearch can train what
its search exports: `train.py` (one run) and `sweep.py` (many). In a checkout, configs/train.py and
configs/sweep.py load these; anywhere, `--config=train:ARG` and `--config=sweep:ARG` name them
(`configlib.load` takes every NAME.py here by its short name, as a file, without importing this
package)."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "train.py")
SWEEP = os.path.join(HERE, "sweep.py")
