"""ASGI entry point: HTTP through Django, WebSocket through Channels' URL router."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hftplatform.settings")
# Django must be set up before anything imports models (the WebSocket routes do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from hftplatform.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # No Origin check: every WebSocket route authenticates by API key, never by cookie, so a foreign
        # page gains nothing by opening one; the check would only refuse trading programs (which send no
        # Origin) and customers' own dashboards on their own domains.
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
