"""litellm's `completion` and `acompletion` (plain and streamed) as `llm_call` events.

litellm answers in OpenAI's shapes for every provider, so the OpenAI readers read it, with the tokens
written to the prompt cache that litellm adds (`cache_creation_input_tokens`, from Anthropic). The
event's model is the one litellm answers with, without the `provider/` prefix of the request. A
provider litellm reaches through the official `openai` client is not recorded a second time: the client's
patch records nothing inside an instrumented call.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from . import _wrap_openai
from ._llm_call import LlmCall, attribute
from ._llm_wrappers import CallReader


def read_response(call: LlmCall, response: Any) -> None:
    _wrap_openai.read_response(call, response)
    call.set_usage("cache_write_tokens", attribute(response, "usage", "cache_creation_input_tokens"))


def read_chunk(call: LlmCall, chunk: Any) -> None:
    _wrap_openai.read_chunk(call, chunk)
    call.set_usage("cache_write_tokens", attribute(chunk, "usage", "cache_creation_input_tokens"))


def patch_points() -> list[tuple[ModuleType, str, CallReader]]:
    """The module functions `auto_instrument` patches (callers name them `litellm.completion`); empty until
    the program has imported `litellm`. Instrumenting does not import it: the import takes seconds, and
    litellm fetches its model price map from the network when imported (tens of seconds offline)."""
    litellm = sys.modules.get("litellm")
    if litellm is None:
        return []
    from litellm import CustomStreamWrapper

    reader = CallReader("litellm", "litellm.completion", read_response, read_chunk, (CustomStreamWrapper,))
    return [(litellm, "completion", reader), (litellm, "acompletion", reader)]


def client_resources(client: Any) -> list[Any]:
    """litellm has no client objects: `wrap` has nothing of it to wrap."""
    return []
