"""Settings for the fan-out benchmark's Channels server: the project's own (so its Redis channel layer), bench app."""

from hftplatform.settings import *  # noqa: F403

ASGI_APPLICATION = "bench.fanout_channels.application"
