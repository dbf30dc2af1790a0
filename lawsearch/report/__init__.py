"""Plots and reports (matplotlib, imported lazily by the callers)."""
