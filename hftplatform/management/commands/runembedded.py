"""`manage.py runembedded`: the whole platform in one process: daphne on PORT, the simulated venue and
the feed runner in a thread, periodic work in process.

Each process's usage pusher writes usage straight to the database when there is no Redis (see
`apps/tiers/services/usage.py`). Production splits the work across daphne processes, feed runners and
Celery worker and beat (README, "Production").
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the embedded platform: daphne on 127.0.0.1:PORT, simulated venue, feeds, periodic jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        from daphne.server import Server

        from hftplatform.asgi import application
        from hftplatform.embedded import EmbeddedMarket

        market = EmbeddedMarket()
        market.start()
        if market.sim_port:
            self.stdout.write(f"simulated venue (Binance protocol) on http://127.0.0.1:{market.sim_port}")
        host, port = options["host"], options["port"]
        self.stdout.write(f"hftplatform serving on http://{host}:{port}/  (API docs: /api/docs/, admin: /admin/)")
        try:
            Server(application, endpoints=[f"tcp:port={port}:interface={host}"], verbosity=0).run()
        finally:
            market.stop()
