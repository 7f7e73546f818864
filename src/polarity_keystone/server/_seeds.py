"""Seeds on the wire: `seed_` and the seed's 16 lowercase hex digits (`seed_00000000e3a91b2f`).

Seeds are 63-bit integers inside Keystone (the engine derives one per replica, the agent sees it as
KEYSTONE_SEED); the API writes them as the REST API's seed strings and reads back any seed a client
holds: `seed_` with 1 to 16 hex digits in either case (`seed_e3a91b2f` is seed 0xe3a91b2f), a JSON
integer, or a string of decimal digits (what runs reported before seed strings, still in old clients'
hands). Anything else is a 400 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from ..engine import SEED_BITS

MAX_SEED = 2**SEED_BITS - 1
SEED_PREFIX = "seed_"
SEED_HEX_DIGITS = (SEED_BITS + 3) // 4
_WIRE_SEED = re.compile(rf"{SEED_PREFIX}([0-9a-fA-F]{{1,{SEED_HEX_DIGITS}}})")
_DECIMAL_SEED = re.compile(r"[0-9]{1,19}")


def seed_text(seed: int) -> str:
    """The seed as the API writes it."""
    return f"{SEED_PREFIX}{seed:0{SEED_HEX_DIGITS}x}"


def parse_seed(value: Any) -> int:
    """The integer of a seed a client sent; ValueError (a 400 naming the field) for anything else."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (match := _WIRE_SEED.fullmatch(value)):
        number = int(match.group(1), 16)
    elif isinstance(value, str) and _DECIMAL_SEED.fullmatch(value):
        number = int(value)
    if number is None or not 0 <= number <= MAX_SEED:
        raise ValueError(
            f"a seed is `{SEED_PREFIX}` and up to {SEED_HEX_DIGITS} hex digits (at most "
            f"{seed_text(MAX_SEED)}), as runs and sandboxes report it, or a number from 0 to {MAX_SEED}"
        )
    return number


WireSeed = Annotated[
    int,
    BeforeValidator(parse_seed),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": rf"^{SEED_PREFIX}([0-7][0-9a-fA-F]{{15}}|[0-9a-fA-F]{{1,15}})$",
                    "examples": ["seed_e3a91b2f"],
                },
                {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
            ],
            "description": f"`{SEED_PREFIX}` and hex digits as runs and sandboxes report it (a number, "
            "or a string of decimal digits, is read as that seed too).",
        }
    ),
]
"""A seed in a request body: read with `parse_seed`, an integer to the route."""
