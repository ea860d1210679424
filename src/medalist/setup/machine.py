"""Phase I as a checked stage machine (design §2).

Stages, their deciders, checks and meta-check coverage come from the stage table (setup/stages.py) and run
in its order; each artifact is checked and the stage retried with the check's message in the
policy's context, up to a budget (then a fallback policy, if any, takes the stage). Meta checks run after
the last stage they cover; when one fails the machine rolls back to the first covered stage and walks
forward again with the failure in context, each stage keeping or redoing its artifact. Every attempt is
appended to ``logs/stages.jsonl``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from medalist.errors import CheckError, InputError, MedalistError
from medalist.setup import checks
from medalist.setup.data import map_name
from medalist.setup.policy import Policy, StageContext
from medalist.setup.spec import TaskSpec
from medalist.setup.stages import FINAL_CHECK, STAGES, Stage, covered_stages, stage_order, stage_table
from medalist.workspace import (
    Workspace,
    write_csv_atomic,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)

if TYPE_CHECKING:
    from medalist.intake import Competition


@dataclass
class StageRecord:
    stage: str
    attempt: int
    ok: bool
    error: str | None
    seconds: float
    policy: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    kept: bool = False
    fallback: str | None = None
    rollback_from: str | None = None
    memory: int = 0  # long-term memory entries in the policy's context


class StageMachine:
    """Runs the setup stages for one competition with one policy (and an optional fallback)."""

    def __init__(
        self,
        comp: Competition,
        ws: Workspace,
        policy: Policy,
        fallback: Policy | None = None,
        max_attempts: int = 3,
        max_rollbacks: int = 3,
        on_record: Callable[[StageRecord], None] | None = None,
        stages: Sequence[Stage] = STAGES,
        recall: Callable[[StageContext], list[str]] | None = None,
    ) -> None:
        self.comp = comp
        self.ws = ws
        self.policy = policy
        self.fallback = fallback
        self.max_attempts = max_attempts
        self.max_rollbacks = max_rollbacks
        self.on_record = on_record
        self.stages = tuple(stages)
        self.recall = recall  # long-term memory for a stage's context (RAG+ / RAG- texts)
        self.rows = stage_table(self.stages)
        self.records: list[StageRecord] = []
        self.arts: dict[str, Any] = {}

    # ------------------------------------------------------------------ main loop
    def run(self) -> TaskSpec:
        arts = self.arts
        i, rollbacks = 0, 0
        review: dict[str, str] = {}  # stage -> meta failure that sent us back through it
        rollback_from: str | None = None
        while True:
            order = stage_order(arts, self.stages)
            if i >= len(order):
                break
            stage = order[i]
            arts[stage] = self._run_stage(stage, arts.get(stage), review.pop(stage, None), rollback_from)
            rollback_from = None
            failed = self._meta_after(stage)
            if failed is None:
                i += 1
                continue
            meta, first, message = failed
            rollbacks += 1
            if rollbacks > self.max_rollbacks:
                raise CheckError(
                    f"setup failed: {meta} still fails after {self.max_rollbacks} rollbacks: {message}"
                )
            order = stage_order(arts, self.stages)
            i = order.index(first)
            thought = f"{meta}: {message}"
            for s in order[i : order.index(stage) + 1]:
                review[s] = thought
            rollback_from = meta
        spec = self._spec()
        self._persist(spec)
        return spec

    def _meta_after(self, stage: str) -> tuple[str, str, str] | None:
        """Run the meta checks whose last covered stage is ``stage``: (check, first covered stage, message)
        for the first that fails."""
        for meta in checks.META_CHECKS:
            covered = covered_stages(meta.name, self.arts, self.stages)
            if not covered or covered[-1] != stage:
                continue
            try:
                meta.fn(self.comp, self.arts)
            except CheckError as e:
                self._record(StageRecord(f"meta:{meta.name}", 1, False, str(e), 0.0, "check"))
                return meta.name, covered[0], str(e)
            except InputError:
                raise
            except Exception as e:  # a broken artifact can break a meta check in any way
                msg = f"{type(e).__name__}: {e}"
                self._record(StageRecord(f"meta:{meta.name}", 1, False, msg, 0.0, "check"))
                return meta.name, covered[0], msg
            self._record(StageRecord(f"meta:{meta.name}", 1, True, None, 0.0, "check"))
        return None

    # ------------------------------------------------------------------ one stage
    def _run_stage(
        self, stage: str, previous: Any, meta_failure: str | None, rollback_from: str | None
    ) -> Any:
        if self.rows[stage].method is None:
            return self._final_check()
        ctx = self._context(stage, previous, meta_failure)
        if previous is not None and meta_failure is not None:
            t0 = time.perf_counter()
            keep = self.policy.keep_artifact(ctx)
            usage = self.policy.usage()
            if keep:
                try:
                    self._check(stage, previous)
                    self._record(
                        StageRecord(
                            stage,
                            0,
                            True,
                            None,
                            time.perf_counter() - t0,
                            self.policy.name,
                            usage.prompt_tokens,
                            usage.completion_tokens,
                            kept=True,
                            rollback_from=rollback_from,
                        )
                    )
                    return previous
                except CheckError as e:
                    ctx.error = str(e)
        last_error = ctx.error
        for policy in [self.policy] + ([self.fallback] if self.fallback else []):
            fallback_note = (
                None if policy is self.policy else f"{self.policy.name} failed {stage}: {last_error}"
            )
            # A deterministic expert gives the same answer twice: as a fallback it gets one try.
            attempts = 1 if policy is self.fallback and policy.name == "expert" else self.max_attempts
            for attempt in range(1, attempts + 1):
                ctx.attempt = attempt
                ctx.error = last_error
                t0 = time.perf_counter()
                art: Any = None
                try:
                    art = self._decide(policy, stage, ctx)
                    self._check(stage, art)
                    error = None
                except InputError as e:
                    self._record(
                        StageRecord(stage, attempt, False, str(e), time.perf_counter() - t0, policy.name)
                    )
                    raise
                except CheckError as e:
                    error = str(e)
                except MedalistError as e:
                    error = str(e)
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
                usage = policy.usage()
                self._record(
                    StageRecord(
                        stage,
                        attempt,
                        error is None,
                        error,
                        time.perf_counter() - t0,
                        policy.name,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                        fallback=fallback_note or usage.fallback,
                        rollback_from=rollback_from,
                        memory=len(ctx.memory) if policy is self.policy else 0,
                    )
                )
                if usage.code:
                    write_text_atomic(self.ws.code / f"{stage}.py", usage.code)
                if error is None:
                    return art
                last_error = error
                ctx.previous = art if art is not None else ctx.previous
        raise CheckError(f"setup stage {stage!r} failed: {last_error}")

    def _context(self, stage: str, previous: Any, meta_failure: str | None) -> StageContext:
        ctx = StageContext(
            self.comp, stage, artifacts=self.arts, previous=previous, meta_failure=meta_failure
        )
        row = self.rows[stage]
        ctx.split, ctx.modality = row.split, row.modality
        ctx.memory = self.recall(ctx) if self.recall else []
        return ctx

    def _decide(self, policy: Policy, stage: str, ctx: StageContext) -> Any:
        return getattr(policy, str(self.rows[stage].method))(ctx)

    def _check(self, stage: str, art: Any) -> None:
        check = self.rows[stage].check
        if check is not None:
            check(art, self.comp, self.arts)

    def _final_check(self) -> dict[str, Any]:
        """A tiny model (the training prior) through the whole path must yield a valid submission."""
        t0 = time.perf_counter()
        try:
            spec = self._spec()
            from medalist.metrics import get_metric

            target = self.arts["train_tab_target"].drop(columns=["id"])
            prior = checks.prior_prediction(self.arts, len(target))
            baseline = get_metric(spec.metric)(target.to_numpy(), spec.transform.decode(prior).to_numpy())
            checks.meta_formatter(self.comp, self.arts)
            result = {"ok": True, "prior_score": baseline}
            self._record(StageRecord(FINAL_CHECK, 1, True, None, time.perf_counter() - t0, "check"))
            return result
        except (CheckError, ValueError, KeyError) as e:
            self._record(StageRecord(FINAL_CHECK, 1, False, str(e), time.perf_counter() - t0, "check"))
            raise CheckError(f"final end-to-end check failed: {e}") from e

    # ------------------------------------------------------------------ output
    def _record(self, rec: StageRecord) -> None:
        self.records.append(rec)
        self.ws.log_event("stages", asdict(rec))
        if self.on_record:
            self.on_record(rec)

    def _spec(self) -> TaskSpec:
        spec = checks.build_spec(self.comp, self.arts)
        files = self.arts["modalities"]["files"]
        sample_cols = self.comp.table_columns(files["sample_submission"])
        spec.submission = {
            "file": files["sample_submission"],
            "columns": sample_cols,
            "n_rows": len(self.arts[map_name("test", spec.modalities[0])]),
            "formatter": dict(self.arts["formatter"]),
            "prior_score": (self.arts.get(FINAL_CHECK) or {}).get("prior_score"),
        }
        return spec

    def _persist(self, spec: TaskSpec) -> None:
        for name, art in self.arts.items():
            if isinstance(art, pd.DataFrame):
                write_parquet_atomic(self.ws.map_path(name), art.assign(id=art["id"].astype(str)))
        sample_rel = self.arts["modalities"]["files"]["sample_submission"]
        sample_copy = self.ws.maps / "sample_submission.csv"
        source = self.comp.root / sample_rel
        if sample_rel.lower().endswith(".csv") and source.is_file():
            shutil.copyfile(self.comp.resolve(sample_rel), sample_copy)
        else:
            write_csv_atomic(sample_copy, self.comp.read_table(sample_rel))
        decisions = {k: v for k, v in self.arts.items() if not isinstance(v, pd.DataFrame)}
        write_json_atomic(self.ws.code / "decisions.json", json.loads(json.dumps(decisions, default=str)))
        spec.save(self.ws.task_json)
