"""Map a pydantic error `loc` onto the spec's data and models.

Pydantic inserts segments that are not in the YAML: the tag of a discriminated union
(`check.file_exists.path`), the member label of a plain union (`command.list[str]`) and `[key]`
for a bad mapping key. Walking the model types next to the `loc` tells those apart from real
keys, and yields the model owning the last key, which the hints need for "did you mean".
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo

from ._models import Spec
from ._source import DataPath


@dataclass(frozen=True)
class Located:
    path: DataPath
    """The `loc` without pydantic's own segments: a path into the YAML data."""
    owner: type[BaseModel] | None
    """The model whose field the last segment of `path` names (or fails to name)."""
    annotation: Any
    """The type expected at `path`, when known."""
    union_at: DataPath | None
    """Where a plain union was entered: pydantic reports one error per member from there."""


def locate(loc: tuple[int | str, ...]) -> Located:
    annotation: Any = Spec
    discriminator: str | None = None
    path: list[str | int] = []
    owner: type[BaseModel] | None = None
    union_at: DataPath | None = None
    for segment in loc:
        annotation, discriminator = _unwrap(annotation, discriminator)
        if segment == "[key]":
            continue
        members = _union_members(annotation)
        if members:
            if discriminator:
                annotation = _member_for_tag(members, discriminator, segment)
            else:
                union_at = union_at if union_at is not None else tuple(path)
                annotation = _member_for_label(members, segment)
            discriminator = None
            continue
        path.append(segment)
        annotation, discriminator, model = _step(annotation, segment)
        owner = model
    annotation, _ = _unwrap(annotation, discriminator)
    return Located(tuple(path), owner, annotation, union_at)


def field_for(model: type[BaseModel], key: object) -> tuple[str, FieldInfo] | None:
    """The field (name and info) a YAML key sets, by name or by any of its aliases."""
    for name, field in model.model_fields.items():
        if key == name or key in yaml_names(field, name):
            return name, field
    return None


def yaml_names(field: FieldInfo, name: str) -> list[str]:
    """The keys a user writes for a field: its alias(es) when it has some, else its name."""
    if isinstance(field.validation_alias, AliasChoices):
        return [choice for choice in field.validation_alias.choices if isinstance(choice, str)]
    return [field.alias or name]


def union_members(annotation: Any) -> list[Any]:
    """The members of a (possibly Annotated) union, without `None`; empty if it is no union."""
    return _union_members(_unwrap(annotation, None)[0])


def tag_of(member: Any, discriminator: str) -> str | None:
    """The literal a discriminated-union member expects in its `discriminator` field."""
    if isinstance(member, type) and issubclass(member, BaseModel) and discriminator in member.model_fields:
        values = get_args(member.model_fields[discriminator].annotation)
        return str(values[0]) if values else None
    return None


def _step(annotation: Any, segment: str | int) -> tuple[Any, str | None, type[BaseModel] | None]:
    """The type found one key (or index) below `annotation`, its discriminator, and its model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        known = field_for(annotation, segment)
        if known is None:
            return None, None, annotation
        field = known[1]
        return field.annotation, _discriminator_name(field), annotation
    origin = get_origin(annotation)
    if origin is list:
        return get_args(annotation)[0], None, None
    if origin is dict:
        return get_args(annotation)[1], None, None
    return None, None, None


def _unwrap(annotation: Any, discriminator: str | None) -> tuple[Any, str | None]:
    """Strip `Annotated` (noting a discriminator in it) and `X | None`, which add no `loc` segment."""
    while True:
        if get_origin(annotation) is Annotated:
            for meta in annotation.__metadata__:
                if isinstance(meta, FieldInfo):
                    discriminator = _discriminator_name(meta) or discriminator
            annotation = get_args(annotation)[0]
            continue
        members = _union_members(annotation)
        if len(members) == 1:
            annotation = members[0]
            continue
        return annotation, discriminator


def _union_members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for member in get_args(annotation) if member is not type(None)]
    return []


def _discriminator_name(field: FieldInfo) -> str | None:
    return field.discriminator if isinstance(field.discriminator, str) else None


def _member_for_tag(members: list[Any], discriminator: str, tag: str | int) -> Any:
    return next((member for member in members if tag_of(member, discriminator) == tag), None)


def _member_for_label(members: list[Any], label: str | int) -> Any:
    """The union member pydantic names `label`: a class name, `literal[...]` or `list[...]`."""
    for member in members:
        origin = get_origin(member)
        if origin is Literal:
            name = "literal"
        elif origin is not None:
            name = origin.__name__
        else:
            name = getattr(member, "__name__", "")
        if label == name or str(label).startswith(f"{name}["):
            return member
    return None
