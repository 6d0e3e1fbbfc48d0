"""`manage.py runmicro`: run the microstructure recorder (trades and metric bars) in this process.

With Redis it takes the recorder's lease, so a Celery recorder cannot run at the same time; it refuses to
start while the lease is held elsewhere.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.microstructure.services.live import get_microstructure
from apps.microstructure.services.recorder import MicroRecorder
from apps.microstructure.services.supervision import run_leased_recorder


class Command(BaseCommand):
    help = "Record trades and 1 s / 1 m metric bars of every book this process's hub sees."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seconds", type=float, default=None, help="Stop after this long")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if settings.REDIS_URL:
            outcome = run_leased_recorder(stop=stop, max_seconds=options["seconds"])
            if "held elsewhere" in outcome:
                raise CommandError(f"{outcome}; stop it first")
        else:
            outcome = MicroRecorder(get_microstructure()).run(stop, max_seconds=options["seconds"])
        self.stdout.write(outcome)
