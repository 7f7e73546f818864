"""Keystone: an open, self-hostable eval runtime for AI agents."""

from ._version import PUBLISHED_IMAGES, __version__
from .analysis import estimate_cost, pricing_table
from .sdk import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    Keystone,
    KeystoneError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    auto_instrument,
    flush_otel,
    register_otel_flush,
    traced,
)

__all__ = [
    "PUBLISHED_IMAGES",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "Keystone",
    "KeystoneError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "__version__",
    "auto_instrument",
    "estimate_cost",
    "flush_otel",
    "pricing_table",
    "register_otel_flush",
    "traced",
]
