"""Ensembles from the ledger: hill climbing, stackers, multi-level stacks, post-processing, distillation.

The array core (``hill_climb``, ``hill_climb_ensemble``, ``ridge_stack``, ``lgbm_stack``,
``multilevel_stack``, ``fit_postprocess``, ``distill``) works on plain OOF / test arrays and the saved
folds; ``build_ensembles`` reads the ledger, runs them all and records each result as an experiment.
"""

from medalist.ensemble.build import build_ensembles, ensemble_version, select_members
from medalist.ensemble.core import EnsembleResult, Scorer, cross_fit, ensemble_splits
from medalist.ensemble.distill import distill, distill_ensemble, lgbm_soft_regressor
from medalist.ensemble.hill import HillClimb, hill_climb, hill_climb_ensemble
from medalist.ensemble.postprocess import PostProcess, fit_postprocess
from medalist.ensemble.stack import (
    LGBMStacker,
    LinearStacker,
    MultiLevelStacker,
    lgbm_stack,
    multilevel_stack,
    ridge_stack,
    stack_ensemble,
)

__all__ = [
    "EnsembleResult",
    "HillClimb",
    "LGBMStacker",
    "LinearStacker",
    "MultiLevelStacker",
    "PostProcess",
    "Scorer",
    "build_ensembles",
    "cross_fit",
    "distill",
    "distill_ensemble",
    "ensemble_splits",
    "ensemble_version",
    "fit_postprocess",
    "hill_climb",
    "hill_climb_ensemble",
    "lgbm_soft_regressor",
    "lgbm_stack",
    "multilevel_stack",
    "ridge_stack",
    "select_members",
    "stack_ensemble",
]
