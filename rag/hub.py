"""Load hub models without hanging on a machine that cannot reach the hub.

sentence-transformers retries an unreachable hub for most of a minute before failing. We first try
the local cache (`local_files_only`), and only go online when the hub answers a 2-second TCP probe,
so an offline `rag ask` fails (or falls back) at once with a clear message.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

T = TypeVar("T")


def hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_model(factory: Callable[..., T], model_id: str, **kwargs) -> T:
    """`factory(model_id, **kwargs)` from a local folder or the cache, else from the hub if reachable."""
    if Path(model_id).exists():
        return factory(model_id, **kwargs)
    try:
        return factory(model_id, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        if not hub_reachable():
            raise OSError(f"'{model_id}' is not in the local cache and the model hub is unreachable") from None
    return factory(model_id, **kwargs)
