"""The Keystone server: the Keystone REST API over the store and the engine.

    create_app(settings)        the FastAPI app (one router per resource, one error handler)
    serve_in_thread(settings)   the same app on a real socket in a background thread
    create_api_key(store, name) a `ks_live_` key (only its sha256 is stored)

Settings are built by the caller (`ks serve`, the embedded mode, tests) and passed in.
"""

from ._app import close_app, create_app
from ._blob_gc import BlobCollector, GcPolicy, GcReport
from ._blobs import open_blob_store
from ._keys import create_api_key, create_sandbox_token, hash_key, revoke_live_key
from ._models import project_name_problem
from ._serve import RunningServer, serve_in_thread
from ._settings import ServerSettings
from ._webhooks import SIGNATURE_HEADER, sign_webhook, verify_webhook

__all__ = [
    "SIGNATURE_HEADER",
    "BlobCollector",
    "GcPolicy",
    "GcReport",
    "RunningServer",
    "ServerSettings",
    "close_app",
    "create_api_key",
    "create_app",
    "create_sandbox_token",
    "hash_key",
    "open_blob_store",
    "project_name_problem",
    "revoke_live_key",
    "serve_in_thread",
    "sign_webhook",
    "verify_webhook",
]
