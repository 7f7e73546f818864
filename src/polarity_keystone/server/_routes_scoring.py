"""Score rules (`/v1/score-rules`) and offline scoring: `POST /v1/experiments/{id}/score` applies rules
to a stored experiment's replicas without running it again; `GET /v1/experiments/{id}/scores` and the
export listing `GET /v1/scores` answer what they gave (see `_scoring` for what each rule type reads).

Scoring answers 202: heuristic rules (`contains`, `regex`) are scored before the answer, which lists
them as `scored`; judge rules are scored after it (`queued`), their scores stored when the judge has
answered for every replica. Scoring an experiment again with a rule replaces that rule's earlier scores
of it.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Response
from pydantic import Field

from ..store import Conflict, Page, ScoreRecord, ScoreRuleRecord, Store
from ._context import ServerContext
from ._deps import Context, LiveKey, Principal
from ._errors import InvalidRequest
from ._export_pages import ExportPage, envelope
from ._models import Id, _Request, _Response, error_responses
from ._paging import LIST_RESPONSES, Pager, Paging
from ._scoring import (
    HEURISTIC_TYPES,
    MAX_RULES_PER_REQUEST,
    MAX_SCORE_RULES_PER_PROJECT,
    InvalidRule,
    Replica,
    RuleType,
    checked_options,
    replicas_of,
    scores_of,
)

router = APIRouter(tags=["Scoring"])
log = logging.getLogger(__name__)


class ScoreRuleCreate(_Request):
    name: str = Field(min_length=1, max_length=200)
    type: RuleType
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="`contains`: `{text}`; `regex`: `{pattern}` (Python syntax); `llm_as_judge`: "
        "`{criteria?, rubric?: {pass, fail}, model?, pass_threshold?}` (criteria or a rubric).",
    )


class ScoreRuleOut(_Response):
    id: str
    name: str
    type: RuleType
    config: dict[str, Any]
    created_at: datetime


class ScoreRequest(_Request):
    rule_ids: list[Id] = Field(min_length=1, max_length=MAX_RULES_PER_REQUEST)


class ScoringAccepted(_Response):
    experiment_id: str
    replicas: int
    """Replicas each rule scores."""
    scored: list[str]
    """Rules whose scores are stored already (heuristic ones)."""
    queued: list[str]
    """Rules scored after this answer (judge ones): their scores appear when the judge has answered."""
    accepted_at: datetime
    """Every score given for this request is created after this moment."""


class ScoreOut(_Response):
    id: str
    rule_id: str
    trace_id: str
    experiment_id: str
    scenario_id: str
    replica: int
    score: float | None
    passed: bool
    state: Literal["passed", "failed", "skipped"]
    message: str
    created_at: datetime


def rule_out(record: ScoreRuleRecord) -> ScoreRuleOut:
    return ScoreRuleOut(
        id=record.id, name=record.name, type=record.type, config=record.options, created_at=record.created_at
    )


def score_out(record: ScoreRecord) -> ScoreOut:
    return ScoreOut(
        id=record.id,
        rule_id=record.rule_id,
        trace_id=record.trace_id,
        experiment_id=record.experiment_id,
        scenario_id=record.scenario_id,
        replica=record.replica,
        score=record.score,
        passed=record.state == "passed",
        state=record.state,
        message=record.message,
        created_at=record.created_at,
    )


@router.post(
    "/v1/score-rules",
    status_code=201,
    response_model=ScoreRuleOut,
    summary="Create a score rule, applied when an experiment is scored",
    responses=error_responses(403),
)
def create_rule(body: ScoreRuleCreate, context: Context, caller: LiveKey) -> ScoreRuleOut:
    try:
        options = checked_options(body.type, body.config)
    except InvalidRule as exc:
        raise InvalidRequest(str(exc), details={"field": exc.field}) from None
    record = ScoreRuleRecord(
        id=f"rule_{secrets.token_hex(12)}",
        project_id=caller.project_id,
        name=body.name,
        type=body.type,
        options=options,
        created_at=datetime.now(UTC),
    )
    try:
        context.store.add_score_rule(record, max_per_project=MAX_SCORE_RULES_PER_PROJECT)
    except Conflict as exc:
        raise InvalidRequest(f"{exc}; delete one first") from None
    return rule_out(record)


@router.get(
    "/v1/score-rules",
    response_model=list[ScoreRuleOut],
    summary="List the project's score rules (oldest first)",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_rules(context: Context, caller: LiveKey, pager: Paging) -> list[ScoreRuleOut]:
    page = context.store.list_score_rules(caller.project_id, cursor=pager.cursor, limit=pager.limit)
    return pager.answer(page, rule_out)


@router.delete(
    "/v1/score-rules/{rule_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a score rule and the scores it gave",
    responses=error_responses(403, 404),
)
def delete_rule(rule_id: str, context: Context, caller: LiveKey) -> Response:
    context.store.delete_score_rule(caller.project_id, rule_id)
    return Response(status_code=204)


@router.post(
    "/v1/experiments/{experiment_id}/score",
    status_code=202,
    response_model=ScoringAccepted,
    summary="Score a stored experiment's replicas with score rules, without running it again",
    responses=error_responses(403, 404),
)
def score_experiment(
    experiment_id: str, body: ScoreRequest, context: Context, caller: LiveKey, background: BackgroundTasks
) -> ScoringAccepted:
    accepted_at = datetime.now(UTC)
    record = context.experiment(caller.project_id, experiment_id)
    rules = [
        context.store.get_score_rule(caller.project_id, rule_id) for rule_id in dict.fromkeys(body.rule_ids)
    ]
    replicas = replicas_of(context.results(record))
    scored, queued = [], []
    for rule in rules:
        if rule.type in HEURISTIC_TYPES:
            _store_scores(context.store, rule, record.id, replicas)
            scored.append(rule.id)
        else:
            background.add_task(_store_scores, context.store, rule, record.id, replicas)
            queued.append(rule.id)
    return ScoringAccepted(
        experiment_id=record.id, replicas=len(replicas), scored=scored, queued=queued, accepted_at=accepted_at
    )


def _store_scores(store: Store, rule: ScoreRuleRecord, experiment_id: str, replicas: list[Replica]) -> None:
    if not store.replace_scores(rule, experiment_id, scores_of(rule, experiment_id, replicas)):
        log.info("score rule %s was deleted while it scored experiment %s", rule.id, experiment_id)


@router.get(
    "/v1/experiments/{experiment_id}/scores",
    response_model=list[ScoreOut],
    summary="An experiment's scores, oldest first (of one rule with `rule_id`)",
    responses={**LIST_RESPONSES, **error_responses(403, 404)},
)
def experiment_scores(
    experiment_id: str,
    context: Context,
    caller: LiveKey,
    pager: Paging,
    rule_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[ScoreOut]:
    return pager.answer(_scores_page(context, caller, experiment_id, rule_id, pager), score_out)


def _scores_page(
    context: ServerContext, caller: Principal, experiment_id: str, rule_id: str | None, pager: Pager
) -> Page[ScoreRecord]:
    """A page of the experiment's scores; NotFound when the experiment is another project's."""
    record = context.experiment(caller.project_id, experiment_id)
    return context.store.list_scores(
        caller.project_id, record.id, rule_id=rule_id, cursor=pager.cursor, limit=pager.limit
    )


@router.get(
    "/v1/scores",
    response_model=ExportPage,
    summary="Export an experiment's scores, oldest first (filter by rule)",
    responses=error_responses(403, 404),
)
def export_scores(
    context: Context,
    caller: LiveKey,
    pager: Paging,
    experiment_id: Annotated[str, Query(max_length=200)],
    rule_id: Annotated[str | None, Query(max_length=200)] = None,
) -> ExportPage:
    page = _scores_page(context, caller, experiment_id, rule_id, pager)
    return envelope([score_out(item).model_dump(mode="json") for item in page.items], page.next_cursor)
