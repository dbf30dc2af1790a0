"""Scaling-law fitting: the Chinchilla law and the conditional (architecture-aware) law.

Fits use jaxopt in float64 inside a scoped context (`float64()`); importing this package flips no
global flag and pulls in no flax, orbax, grain or tensorflow.
"""

from lawsearch.laws.bootstrap import Bootstrap, bootstrap
from lawsearch.laws.chinchilla import ChinchillaFitInfo, ChinchillaLaw
from lawsearch.laws.conditional import DEFAULT_R_RANGE, ConditionalLaw, FitInfo
from lawsearch.laws.fit_runs import Assessment, FitSummary, assess, fit_runs, noise_check
from lawsearch.laws.fit_runs import noise_lines
from lawsearch.laws import l_opt, noise
from lawsearch.laws.forms import FORMS
from lawsearch.laws.precision import float64
from lawsearch.laws.runs_table import RunsTable
from lawsearch.laws.synthetic import synthetic_sweep
from lawsearch.laws.validation import cross_scale_validation, residual_diagnostics, spearman

__all__ = [
    "Assessment", "Bootstrap", "ChinchillaFitInfo", "ChinchillaLaw", "ConditionalLaw",
    "DEFAULT_R_RANGE", "FORMS", "FitInfo", "FitSummary", "RunsTable", "assess", "bootstrap",
    "cross_scale_validation", "fit_runs", "float64", "l_opt", "noise", "noise_check",
    "noise_lines", "residual_diagnostics", "spearman", "synthetic_sweep",
]
