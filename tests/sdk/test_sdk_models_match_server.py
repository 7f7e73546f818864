"""The SDK's response models can hold everything the server sends: every field of a server response
model exists in its SDK counterpart with a type that accepts the server's. A field added to (or retyped
in) a server response without the SDK following fails here, not in a user's client."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from polarity_keystone import sdk
from polarity_keystone.server import _models as server
from polarity_keystone.server import _routes_alerts as server_alerts

COUNTERPARTS: dict[type[BaseModel], type[BaseModel]] = {
    server.ServiceInfo: sdk.ServiceInfo,
    server.SandboxOut: sdk.Sandbox,
    server.CommandResult: sdk.CommandResult,
    server.FileInfo: sdk.FileInfo,
    server.StateSnapshot: sdk.StateSnapshot,
    server.StateDiff: sdk.StateDiff,
    server.SpecOut: sdk.Spec,
    server.SpecBundleFileOut: sdk.SpecBundleFile,
    server.SpecBundleOut: sdk.SpecBundle,
    server.ExperimentOut: sdk.Experiment,
    server.ExperimentResults: sdk.ExperimentResults,
    server.MetricComparison: sdk.MetricComparison,
    server.ScenarioComparison: sdk.ScenarioComparison,
    server.ComparisonPolicy: sdk.ComparisonPolicy,
    server.SuiteComparison: sdk.SuiteComparison,
    server.Comparison: sdk.Comparison,
    server.MetricsSummary: sdk.MetricsSummary,
    server.ToolStats: sdk.ToolStats,
    server.TrendPoint: sdk.TrendPoint,
    server.ExperimentMetrics: sdk.ExperimentMetrics,
    server.TraceMetrics: sdk.TraceMetrics,
    server.Trace: sdk.SandboxTrace,
    server.ConfigFile: sdk.ConfigFile,
    server.AgentAuth: sdk.AgentAuth,
    server.AgentSnapshotOut: sdk.AgentSnapshot,
    server.WebhookOut: sdk.Webhook,
    server.WebhookCreated: sdk.Webhook,
    server.WebhookDeliveryOut: sdk.WebhookDelivery,
    server_alerts.AlertRuleOut: sdk.AlertRule,
    server_alerts.AlertRuleCreated: sdk.AlertRule,
    server_alerts.AlertFiringOut: sdk.AlertFiring,
}


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return list(get_args(annotation))
    return [annotation]


def _plain(annotation: Any) -> Any:
    """A Literal stands for the type of its values; an Annotated type for the type it constrains."""
    if get_origin(annotation) is Annotated:
        return _plain(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        (kind,) = {type(value) for value in get_args(annotation)}
        return kind
    return annotation


def _all_defaulted(model: type[BaseModel]) -> bool:
    return all(not field.is_required() for field in model.model_fields.values())


def accepts(sdk_type: Any, server_type: Any) -> bool:
    """Whether an SDK field of `sdk_type` parses every value a server field of `server_type` sends."""
    if sdk_type is Any:
        return True
    sdk_members = [_plain(m) for m in _members(sdk_type)]
    return all(any(_accepts_one(s, _plain(v)) for s in sdk_members) for v in _members(server_type))


def _accepts_one(sdk_type: Any, server_type: Any) -> bool:
    if sdk_type is Any or sdk_type == server_type:
        return True
    if isinstance(server_type, type) and issubclass(server_type, BaseModel):
        return COUNTERPARTS.get(server_type) is sdk_type
    if isinstance(sdk_type, type) and issubclass(sdk_type, BaseModel):
        # a free-form server object read into a typed SDK model: fine when every SDK field has a default
        return get_origin(server_type) is dict and _all_defaulted(sdk_type)
    if sdk_type is float and server_type is int:
        return True
    if get_origin(sdk_type) is not None and get_origin(sdk_type) == get_origin(server_type):
        pairs = zip(get_args(sdk_type), get_args(server_type), strict=True)
        return all(accepts(s, v) for s, v in pairs)
    return False


def mismatches(server_model: type[BaseModel], sdk_model: type[BaseModel]) -> list[str]:
    found = []
    for name, field in server_model.model_fields.items():
        mine, where = sdk_model.model_fields.get(name), f"{sdk_model.__name__}.{name}"
        if mine is None:
            found.append(f"{where} is missing (server: {field.annotation})")
        elif not accepts(mine.annotation, field.annotation):
            found.append(f"{where} is {mine.annotation}, the server sends {field.annotation}")
    return found


@pytest.mark.parametrize("server_model", list(COUNTERPARTS), ids=lambda model: model.__name__)
def test_the_sdk_model_holds_every_field_the_server_sends(server_model: type[BaseModel]) -> None:
    assert mismatches(server_model, COUNTERPARTS[server_model]) == []


def test_a_missing_or_retyped_field_is_caught() -> None:
    class Server(BaseModel):
        captured_at: datetime
        timed_out: bool
        trend: list[server.TrendPoint]

    class Sdk(BaseModel):
        captured_at: str = ""
        trend: list[dict[str, Any]] = []

    assert mismatches(Server, Sdk) == [
        f"Sdk.captured_at is {str}, the server sends {datetime}",
        f"Sdk.timed_out is missing (server: {bool})",
        f"Sdk.trend is {list[dict[str, Any]]}, the server sends {list[server.TrendPoint]}",
    ]
