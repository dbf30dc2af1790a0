"""Scaling-law fitting: the Chinchilla law and the conditional (architecture-aware) law.

Fits use jaxopt in float64 inside a scoped context (`float64()`); importing this package flips no
global flag and pulls in no flax, orbax, grain or tensorflow.
"""

from lawsearch.laws.chinchilla import ChinchillaFitInfo, ChinchillaLaw
from lawsearch.laws.conditional import DEFAULT_R_RANGE, ConditionalLaw, FitInfo
from lawsearch.laws.forms import FORMS
from lawsearch.laws.precision import float64

__all__ = [
    "ChinchillaFitInfo", "ChinchillaLaw", "ConditionalLaw", "DEFAULT_R_RANGE", "FORMS", "FitInfo",
    "float64",
]
