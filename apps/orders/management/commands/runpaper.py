"""`manage.py runpaper`: run the paper engine in this process, under its Redis lease (production).

It refuses to start while another process (a Celery runner) holds the lease; SIGINT/SIGTERM stop it.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.orders.services.engine.redis_transport import run_paper_engine


class Command(BaseCommand):
    help = "Run the paper engine (needs REDIS_URL; embedded runs start it in the web process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seconds", type=float, default=None, help="Stop after this long")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: without Redis the engine runs inside `runembedded`")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write("paper engine: taking the lease")
        why = run_paper_engine(max_seconds=options["seconds"], stop=stop)
        if why.endswith("held elsewhere"):
            raise CommandError(f"{why}: stop the other one first")
        self.stdout.write(why)
