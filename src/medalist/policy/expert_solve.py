"""The expert's solve schedule: baselines of several families, feature variants of the best GBDT, a tuning
run, then diversity (other GBDTs on the best recipe, more seeds). Deterministic given the ledger."""

from __future__ import annotations

from medalist.solve.ledger import is_trial
from medalist.solve.models.base import Family
from medalist.solve.models.registry import (
    FAMILIES,
    MANY_CLASSES,
    FamilyInfo,
    baseline_order,
    gbdt_families,
    tabular_families,
)
from medalist.solve.policy import EMPTY_PRIOR, Prior, Proposal, SolveState
from medalist.solve.types import ExperimentRecord, ExperimentSpec

# What families are (cost, baseline order, bounds) lives on them: medalist.solve.models.registry.
GBDTS = gbdt_families()
TABULAR_FAMILIES = tabular_families()
NETWORK_SHARE = 0.5  # a slow network's first run must fit in this share of the time left
TUNE_BY = 0.55  # if nothing is tuned when this share of the solve time is left, tune before anything else
MAX_TRIALS = 60  # tuning rounds on one family stop once it has this many trials
# A tuning round is worth its time only if it fits this many trials at its parent's cost (on
# house-prices-advanced-regression-techniques at 300 s, a 56 s round on a 66 s CatBoost ran one 112 s trial).
MIN_ROUND_TRIALS = 2
MAX_SEEDS = 6
MANY_CLASS_COUNT = 20  # above this many classes, a table's baselines follow the many-classes order
UNKNOWN_COST = 2.0  # relative cost of a model the registry does not know (a script's)


class ExpertSolver:
    """Chooses the next experiment from the ledger's state; a memory ``prior`` (what won on similar past
    tasks) orders the baselines and recipes and seeds each family's first tuning round."""

    name = "expert"

    def __init__(self, tune_share: float = 0.35, seeds: int = 3, prior: Prior = EMPTY_PRIOR) -> None:
        self.tune_share = tune_share
        self.seeds = seeds
        self.prior = prior

    def propose(self, state: SolveState) -> list[Proposal]:
        tried = {r.name for r in state.done} | {r.name for r in state.failed}
        steps = [self._baselines, self._recipes, self._tune, self._diversity, self._more]
        tuned_any = bool(state.trials())
        if not tuned_any and state.time_left < TUNE_BY * state.time_total:
            steps = [self._tune, self._recipes, self._baselines, self._diversity, self._more]  # tune in time
        for step in steps:
            for p in step(state):
                if _tuned(state, p) if p.kind == "tune" else _name(p) in tried:
                    continue
                if self._affordable(state, p):
                    return [p]
        return []

    def _more(self, state: SolveState) -> list[Proposal]:
        """Time left after the schedule: keep tuning the best family, then more seeds of the best, then
        tune the runner-up families (playground-series-s3e5 at 900 s ended at 624 s: CatBoost was at its
        trial cap and nothing else was ever tuned)."""
        best = state.best()
        if best is None:
            return []
        rounds = []
        if state.time_left >= 45:
            for lead in state.family_leaders():
                trials = len(state.trials(lead.model))
                if trials >= MAX_TRIALS:
                    continue
                rounds.append(
                    Proposal(
                        "tune",
                        model=lead.model,
                        features=lead.features,
                        tune_seconds=max(30.0, self.tune_share * state.time_left),
                        why=f"tune {lead.model} further ({trials} trials so far)",
                        parent=lead.name,
                        round=trials,
                    )
                )
        first = rounds[:1] if rounds and rounds[0].model == best.model else []
        return first + _other_seeds(best, range(self.seeds, MAX_SEEDS)) + rounds[len(first) :]

    # ------------------------------------------------------------------ phases
    def _baselines(self, state: SolveState) -> list[Proposal]:
        # Round-robin over the input modalities, so one slow modality cannot eat the budget of the others;
        # a substantial table goes first (pre-computed features are often the strongest signal).
        modalities = [m for m in ("text", "image", "tabular") if m in state.modalities]
        if state.n_columns.get("tabular", 0) >= 5:
            modalities = ["tabular"] + [m for m in modalities if m != "tabular"]
        lists = []
        for modality in modalities:
            first = baseline_order(modality)
            if modality == "tabular" and self._many_classes(state):
                first = baseline_order(MANY_CLASSES)  # a tree per class and round: GBDTs are slow and weak
            lists.append(
                self.prior.reorder([m for m in first if m in state.models and self._fits_size(state, m)])
            )
        order: list[str] = []
        for i in range(max((len(x) for x in lists), default=0)):
            order += [x[i] for x in lists if i < len(x) and x[i] not in order]
        out = []
        for model in order:
            if model not in state.models or not self._fits_size(state, model):
                continue
            out.append(
                Proposal(
                    "spec",
                    model=model,
                    features="base",
                    why="baseline of a model family",
                    max_seconds=_baseline_seconds(state, model),
                )
            )
        return out

    def _recipes(self, state: SolveState) -> list[Proposal]:
        best = state.best(TABULAR_FAMILIES)
        if best is None:
            return []
        return [
            Proposal(
                "spec", model=best.model, features=r, why=f"feature recipe {r!r} on the best tabular model"
            )
            for r in self.prior.reorder(list(state.recipes), self.prior.recipes)
            if r != "base"
        ]

    def _tune(self, state: SolveState) -> list[Proposal]:
        """Tune the best family overall, then the best GBDT when that is another family; a family whose
        round would not fit MIN_ROUND_TRIALS trials gives its place to the next best."""
        if state.time_left < 45:
            return []
        seconds = max(30.0, self.tune_share * state.time_left)
        leaders = [r for r in state.family_leaders() if MIN_ROUND_TRIALS * r.seconds <= seconds]
        out: list[Proposal] = []
        for families in (None, GBDTS):
            best = next((r for r in leaders if families is None or r.model in families), None)
            if best is None or any(p.model == best.model for p in out):
                continue
            out.append(
                Proposal(
                    "tune",
                    model=best.model,
                    features=best.features,
                    tune_seconds=seconds,
                    why=f"tune {best.model} on recipe {best.features!r}",
                    parent=best.name,
                    warm_start=() if state.trials(best.model) else self.prior.params_for(best.model),
                )
            )
        return out

    def _diversity(self, state: SolveState) -> list[Proposal]:
        best = state.best(GBDTS)
        if best is None:
            return []
        out = [
            Proposal("spec", model=m, features=best.features, why="another GBDT on the best recipe")
            for m in GBDTS
            if m != best.model and m in state.models and not self._many_classes(state)
        ]
        return out + _other_seeds(best, range(1, self.seeds))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _many_classes(state: SolveState) -> bool:
        return state.task_kind == "multiclass" and state.n_outputs > MANY_CLASS_COUNT

    @staticmethod
    def _fits_size(state: SolveState, model: str) -> bool:
        info = _info(model)
        cells = state.n_train * max(1, sum(state.n_columns.values()))
        return (
            state.time_total >= info.min_budget
            and cells < info.max_cells
            and state.n_train < info.max_train_rows
        )

    def _affordable(self, state: SolveState, p: Proposal) -> bool:
        """Fits the time left; a tuning round must also fit MIN_ROUND_TRIALS trials at its parent's cost, and
        a network family's first run may take at most half the time left (on leaf-classification at 300 s,
        a 112 s fusion baseline scoring 1.12 left no time to tune the linear model at 0.12)."""
        estimate = self._estimate(state, p)
        if p.kind == "tune":
            parent = next((r for r in state.done if r.name == p.parent), None)
            if parent is not None and MIN_ROUND_TRIALS * parent.seconds > p.tune_seconds:
                return False
        if p.kind == "spec" and _info(p.model).network and not any(r.model == p.model for r in state.done):
            return estimate <= NETWORK_SHARE * state.time_left
        return estimate <= state.time_left

    @staticmethod
    def _estimate(state: SolveState, p: Proposal) -> float:
        if p.kind == "tune":
            return p.tune_seconds
        own = [r.seconds for r in state.done if r.model == p.model]
        info = _info(p.model)
        by_rows = info.row_cost * (state.n_train + state.n_test)
        cache = info.embedding_cache
        encoded = bool(cache) and any(_info(r.model).embedding_cache == cache for r in state.done)
        if not own and by_rows and not encoded:
            return by_rows
        if own:
            base = sum(own) / len(own)
            return base * (1.5 if p.features in ("rich", "interactions", "target_enc") else 1.0)
        lgbm = [r.seconds for r in state.done if r.model == "lgbm"]
        if lgbm:
            return info.cost * sum(lgbm) / len(lgbm)
        measured = [r.seconds / _info(r.model).cost for r in state.done]
        if measured:
            return info.cost * sum(measured) / len(measured)
        return 0.0  # nothing measured yet: try it, the runner's time limit protects the budget


def _baseline_seconds(state: SolveState, model: str) -> float:
    """The training bound of a tabular family's baseline (0: none, for text and image families)."""
    return _info(model).baseline_share * state.time_total


def _name(p: Proposal) -> str:
    if p.kind == "script":
        return p.name
    return ExperimentSpec(p.model, dict(p.params), p.features, p.seed).name


def _info(model: str) -> FamilyInfo:
    """The registry's facts of ``model``; a model it does not know (a script) gets the defaults."""
    return FAMILIES.get(model) or _UNKNOWN


_UNKNOWN = FamilyInfo(Family, cost=UNKNOWN_COST)


def _tuned(state: SolveState, p: Proposal) -> bool:
    """Whether this tuning round already ran: a round is known by the trials before it."""
    return len(state.trials(p.model)) > p.round


def _other_seeds(best: ExperimentRecord, seeds: range) -> list[Proposal]:
    """The best experiment again with other seeds (its tuned parameters when a trial found it)."""
    # a trial's own parameters, without the time bound it ran under
    params = {k: v for k, v in best.params.items() if k != "max_seconds"} if is_trial(best) else {}
    return [
        Proposal(
            "spec",
            model=best.model,
            features=best.features,
            params=params,
            seed=s,
            why="another seed of the best",
            parent=best.name,
            origin="seed",
        )
        for s in seeds
    ]
