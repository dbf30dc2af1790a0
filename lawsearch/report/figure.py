"""Figures drawn without pyplot: nothing here touches matplotlib's global backend or figure
registry, so importing lawsearch.report leaves a notebook's inline plots as they were."""

from __future__ import annotations

import io

from matplotlib.figure import Figure as _MatplotlibFigure


class Figure(_MatplotlibFigure):
  """A matplotlib Figure that a notebook shows inline as PNG (IPython's `_repr_png_`), with no
  backend of its own to set."""

  def _repr_png_(self) -> bytes:
    buffer = io.BytesIO()
    self.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def save(fig, p) -> str:
  """Writes `fig` as a PNG to `p` (a local path or a gs:// URL, through lawsearch.paths)."""
  from lawsearch import paths  # pylint: disable=import-outside-toplevel

  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  paths.write_bytes(p, buffer.getvalue())
  return str(p)


def subplots(nrows: int = 1, ncols: int = 1, *, figsize, dpi: int = 120, **kwargs):
  """(Figure, axes) as pyplot.subplots would give, on a Figure of its own (`fig.savefig` writes
  it; a notebook displays a returned Figure inline)."""
  fig = Figure(figsize=figsize, dpi=dpi)
  return fig, fig.subplots(nrows, ncols, **kwargs)
