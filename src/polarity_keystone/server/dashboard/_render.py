"""Pages from Jinja2 templates, escaped by default, with the headers every dashboard response carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .._deps import Principal
from .._sessions import DASHBOARD_PREFIX, STATIC_PREFIX, Session

SECURITY_HEADERS = {
    # Scripts only from this server, and no inline ones: an agent's output shown on a page cannot run.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=PackageLoader("polarity_keystone.server.dashboard", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def percent(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


def dollars(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def moment(value: datetime | str | None) -> str:
    """A time as UTC to the second: `2026-12-04 05:41:19 UTC`."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def experiment_url(experiment_id: str) -> str:
    return f"{DASHBOARD_PREFIX}/experiments/{quote(experiment_id, safe='')}"


def replica_url(experiment_id: str, scenario_id: str, replica_index: int) -> str:
    scenario = quote(scenario_id, safe="")
    return f"{experiment_url(experiment_id)}/scenarios/{scenario}/replicas/{replica_index}"


def spec_url(spec_id: str, version: int | None = None) -> str:
    url = f"{DASHBOARD_PREFIX}/specs/{quote(spec_id, safe='')}"
    return url if version is None else f"{url}?version={version}"


def sandbox_url(sandbox_id: str) -> str:
    return f"{DASHBOARD_PREFIX}/sandboxes/{quote(sandbox_id, safe='')}"


def compare_url(baseline_id: str, candidate_id: str) -> str:
    return f"{DASHBOARD_PREFIX}/compare?{urlencode({'baseline': baseline_id, 'candidate': candidate_id})}"


templates.filters.update(percent=percent, seconds=seconds, dollars=dollars, moment=moment)
templates.globals.update(
    ui=DASHBOARD_PREFIX,
    static=STATIC_PREFIX.rstrip("/"),
    experiment_url=experiment_url,
    replica_url=replica_url,
    spec_url=spec_url,
    sandbox_url=sandbox_url,
    compare_url=compare_url,
)


def page(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """`template` rendered with `values`, the caller and the CSRF token of its session (forms need it)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    session: Session | None = getattr(request.state, "session", None)
    html = templates.get_template(template).render(
        principal=principal,
        csrf_token=session.csrf_token if session else "",
        signed_in=session is not None,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code, headers=SECURITY_HEADERS)
