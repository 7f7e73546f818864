"""Keystone: an open, self-hostable eval runtime for AI agents."""

from ._version import PUBLISHED_IMAGES, __version__
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
    "traced",
]
