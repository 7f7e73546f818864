"""The prompt template language: variables, dotted paths, sections, what is left as written, the
variables a template takes, and the bounds that keep a caller's template from costing the server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from polarity_keystone.server._prompt_render import (
    MAX_DEPTH,
    MAX_OUTPUT_CHARS,
    MAX_TEMPLATE_CHARS,
    RenderLimitExceeded,
    TemplateError,
    parse,
)

RENDERS: list[tuple[str, dict[str, Any], str]] = [
    ("Hello {name}!", {"name": "Ada"}, "Hello Ada!"),
    ("Hello {{name}}!", {"name": "Ada"}, "Hello Ada!"),
    ("Hello {{ name }}!", {"name": "Ada"}, "Hello Ada!"),
    ("{user.name} of {user.team.name}", {"user": {"name": "Ada", "team": {"name": "core"}}}, "Ada of core"),
    ("first: {items.0}, second: {items.1.id}", {"items": ["a", {"id": 7}]}, "first: a, second: 7"),
    (
        "{n} {x} {yes} {no} {nothing}",
        {"n": 3, "x": 1.5, "yes": True, "no": False, "nothing": None},
        "3 1.5 true false ",
    ),
    ("{obj} {arr}", {"obj": {"a": 1}, "arr": [1, "b"]}, '{"a": 1} [1, "b"]'),
    (
        "{unknown} {{unknown}} {user.missing} {items.9}",
        {"user": {}, "items": []},
        "{unknown} {{unknown}} {user.missing} {items.9}",
    ),
    ('JSON stays: {"a": 1} { name } {1x}', {"name": "n"}, 'JSON stays: {"a": 1} { name } {1x}'),
    ("{#items}- {_it}\n{/items}", {"items": ["a", "b"]}, "- a\n- b\n"),
    ("{{#items}}[{{_it}}]{{/items}}", {"items": [1, 2, 3]}, "[1][2][3]"),
    (
        "{#rows}{name}={_it.value};{/rows}",
        {"rows": [{"name": "a", "value": 1}, {"name": "b", "value": 2}]},
        "a=1;b=2;",
    ),
    (
        "{#rows}{name}/{title}{/rows}",
        {"title": "T", "rows": [{"name": "a"}, {"name": "b", "title": "own"}]},
        "a/Tb/own",
    ),
    ("{#user}{name} ({_it.name}){/user}", {"user": {"name": "Ada"}}, "Ada (Ada)"),
    (
        "{#flag}on{/flag}|{#off}x{/off}|{#empty}x{/empty}|{#absent}x{/absent}",
        {"flag": "yes", "off": 0, "empty": []},
        "on|||",
    ),
    ("{#flag}{_it}{/flag}", {"flag": 42}, "42"),
    ("{#a}{#b}{a.0}{_it}{/b}{/a}", {"a": [1, 2], "b": ["x", "y"]}, "1x1y1x1y"),
    (
        "{#orders}{#items}{sku}x{qty} {/items}| {/orders}",
        {"orders": [{"items": [{"sku": "s1", "qty": 2}]}, {"items": []}]},
        "s1x2 | | ",
    ),
    ("{#user.roles}{_it},{/user.roles}", {"user": {"roles": ["admin", "dev"]}}, "admin,dev,"),
    ("{#x}{/x}", {"x": [1]}, ""),
    ("", {}, ""),
    ("{_it}", {}, "{_it}"),
]


@pytest.mark.parametrize(("template", "variables", "rendered"), RENDERS)
def test_render(template: str, variables: dict[str, Any], rendered: str) -> None:
    assert parse(template).render(variables) == rendered


VARIABLES: list[tuple[str, list[str]]] = [
    ("Hello {name}, {{ greeting }} {name}", ["name", "greeting"]),
    ("{user.name} {#items}{sku} {_it}{/items} {#flag}{inner}{/flag}", ["user", "items", "flag"]),
    ("no variables", []),
    ("{_it}", []),
]


@pytest.mark.parametrize(("template", "names"), VARIABLES)
def test_the_variables_a_template_takes(template: str, names: list[str]) -> None:
    assert parse(template).variables() == names


INVALID: list[tuple[str, str]] = [
    ("{#items}never closed", "never closed"),
    ("closed {/items} without opening", "closes no open section"),
    ("{#a}{#b}{/a}{/b}", "expected {/b}"),
    ("{#a}" * (MAX_DEPTH + 1) + "{/a}" * (MAX_DEPTH + 1), f"at most {MAX_DEPTH} deep"),
    ("x" * (MAX_TEMPLATE_CHARS + 1), f"at most {MAX_TEMPLATE_CHARS}"),
]


@pytest.mark.parametrize(("template", "message"), INVALID)
def test_an_invalid_template_is_refused_with_why(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(template)


def test_the_deepest_allowed_nesting_and_the_longest_template_parse() -> None:
    deepest = "{#a}" * MAX_DEPTH + "{_it}" + "{/a}" * MAX_DEPTH
    assert parse(deepest).render({"a": ["z"]}) == "z"
    assert parse("x" * MAX_TEMPLATE_CHARS).render({}) == "x" * MAX_TEMPLATE_CHARS


def test_a_section_over_a_huge_list_is_stopped_at_the_output_limit() -> None:
    with pytest.raises(RenderLimitExceeded, match=f"{MAX_OUTPUT_CHARS} characters"):
        parse("{#rows}{_it}{/rows}").render({"rows": ["x" * 1000] * 2000})


def test_one_huge_value_is_stopped_at_the_output_limit() -> None:
    with pytest.raises(RenderLimitExceeded, match="characters"):
        parse("{big}").render({"big": "y" * (MAX_OUTPUT_CHARS + 1)})


def test_nested_sections_that_write_nothing_are_stopped_by_the_work_limit_quickly() -> None:
    """Six sections over 100 items each are 10^12 iterations writing nothing: refused, and fast."""
    template = "{#a}" * 6 + "{/a}" * 6
    started = time.monotonic()
    with pytest.raises(RenderLimitExceeded, match="steps"):
        parse(template).render({"a": list(range(100))})
    assert time.monotonic() - started < 5


def test_output_just_under_the_limit_renders() -> None:
    rendered = parse("{#rows}{_it}{/rows}").render({"rows": ["x" * 1024] * 1024})
    assert len(rendered) == MAX_OUTPUT_CHARS


def test_paths_never_reach_attributes_or_run_code() -> None:
    variables = {"text": "abc", "items": [1], "d": {"k": "v"}}
    template = "{text.upper} {text.__class__} {items.append} {d.keys} {d.__len__} {items.-1}"
    assert parse(template).render(variables) == template
