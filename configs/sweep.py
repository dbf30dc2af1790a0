"""A training sweep: `lawsearch sweep --config=configs/sweep.py:ARG --root DIR`.

The config itself is lawsearch/configs/sweep.py (in the package, so an installed lawsearch has it:
`--config=sweep:ARG` there); its docstring lists the ARGs.
"""

from lawsearch.configs.sweep import get_config  # pylint: disable=unused-import
