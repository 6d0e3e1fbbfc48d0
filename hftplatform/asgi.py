"""ASGI entry point: HTTP through Django, WebSocket through Channels' URL router."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hftplatform.settings")
# Django must be set up before anything imports models (the WebSocket routes do).
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from hftplatform.handler import SyncChainASGIHandler  # noqa: E402
from hftplatform.routing import websocket_urlpatterns  # noqa: E402

# Django's ASGIHandler, but running the middleware chain and view in one hop on a reused thread.
django_asgi_app = SyncChainASGIHandler() if settings.HFT_SYNC_CHAIN_HANDLER else ASGIHandler()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # No Origin check: every WebSocket route authenticates by API key, never by cookie, so a foreign
        # page gains nothing by opening one; the check would only refuse trading programs (which send no
        # Origin) and customers' own dashboards on their own domains.
        "websocket": URLRouter(websocket_urlpatterns),
    }
)


def freeze_startup_heap() -> int:
    """Put everything loaded at start-up out of the garbage collector's reach; returns how many objects.

    A server process holds some 150,000 objects from imports, settings and the URLconf that live as long
    as it does. Left in the oldest generation, every full collection walks them all: 70-85 ms with the
    process stopped, every few seconds under load, which is each such request's p95 (BENCHMARKS.md).
    Frozen, a full collection walks only what was made since: a few ms. The URLconf is loaded first, so
    the views it imports are frozen too instead of loading on the first request.
    """
    get_resolver().url_patterns  # noqa: B018 - imports every URLconf and view
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


if settings.HFT_GC_FREEZE:
    freeze_startup_heap()
