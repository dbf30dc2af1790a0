"""Figures drawn without pyplot: nothing here touches matplotlib's global backend or figure
registry, so importing lawsearch.report leaves a notebook's inline plots as they were."""

from __future__ import annotations

from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize, dpi: int = 120, **kwargs):
  """(Figure, axes) as pyplot.subplots would give, on a Figure of its own (`fig.savefig` writes
  it; a notebook displays a returned Figure inline)."""
  fig = Figure(figsize=figsize, dpi=dpi)
  return fig, fig.subplots(nrows, ncols, **kwargs)
