"""Tables: fixed-width text for the terminal, Markdown for reports, and what they hold as JSON."""

import numpy as np


def json_value(value):
  """`json.dumps`'s default for a table's cells: a numpy scalar as its Python number, anything
  else as its text."""
  return value.item() if hasattr(value, "item") else str(value)


def _fmt(v) -> str:
  """Floats (numpy's too) to 4 significant digits, a list or tuple (an interval) item by item;
  everything else as str.

  >>> _fmt([np.float64(-0.0125429), np.float32(0.0101)]), _fmt(3e7), _fmt("dense")
  ('[-0.01254, 0.0101]', '3.0000e+07', 'dense')
  """
  if isinstance(v, (list, tuple)):
    return "[" + ", ".join(_fmt(item) for item in v) + "]"
  if isinstance(v, (float, np.floating)):
    return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.4e}"
  return str(v)


def format_table(rows: list[dict], columns: list[str]) -> str:
  """`rows` (dicts) over `columns`, right-aligned; floats to 4 significant digits."""
  cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
  lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
  lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
  return "\n".join(lines)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
  """`rows` (dicts) over `columns` as a GitHub Markdown table; floats to 4 significant digits."""
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
  return "\n".join(lines)
