"""Train one model: `lawsearch train --config=configs/train.py:ARG --workdir runs/NAME`.

The config itself is lawsearch/configs/train.py (in the package, so an installed lawsearch has it:
`--config=train:ARG` there); its docstring lists the ARGs.
"""

from lawsearch.configs.train import get_config  # pylint: disable=unused-import
