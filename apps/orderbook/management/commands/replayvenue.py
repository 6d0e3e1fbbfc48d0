"""`manage.py replayvenue FILE`: serve a recorded venue session over loopback, with optional faults."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.orderbook.domain.faults import FaultError, FaultPlan
from apps.orderbook.domain.recording import Recording, RecordingError, parse_recording
from apps.orderbook.replay import ReplayVenue

FAULTS_HELP = """\
comma-separated faults, applied in order; each may end in @CONN to touch one recorded conn only.
drop:SEL | dup:SEL[:LATER] (again right after, or after LATER more matching frames) | corrupt:SEL
(one size in an OKX books / Kraken v1 book update, so its checksum fails) | okxseq[:INST[:KA[:RESET]]]
(OKX running seqId/prevSeqId, checksum 0, a keep-alive after INST's KA-th books frame, a seqId reset at
its RESET-th) | kill:N[:TIMES] (drop the TCP connection after N frames on the next TIMES connections;
the client's next connection replays that conn from the start). SEL is KIND:INST:NTH, the NTH frame as
recorded: KIND is Binance e (depthUpdate) or bookTicker, OKX channel (books), Kraken v1 channel (book),
Coinbase type (l2update), or an event (subscribe); KIND.snapshot / KIND.update narrow it; * is any.
Example: drop:depthUpdate:NKNUSDT:5,dup:depthUpdate:NKNUSDT:7:3,kill:40"""


class Command(BaseCommand):
    help = (
        "Replay a recorded venue session (.replay.jsonl) over loopback in the venue's own WebSocket and REST "
        "protocol, paced by the recorded timestamps, with optional fault injection. Runs until Ctrl-C."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file", type=Path, help="a recording, e.g. ../shared/data/venues/okx_2022-05-13.replay.jsonl"
        )
        parser.add_argument(
            "--speed", type=float, default=1.0, help="1 = real time, 10 = ten times faster, 0 = as fast as possible"
        )
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
        parser.add_argument("--faults", default="", metavar="SPEC", help=FAULTS_HELP)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["speed"] < 0:
            raise CommandError("--speed must not be negative")
        recording = self._read(options["file"])
        try:
            venue = ReplayVenue(recording, speed=options["speed"], faults=FaultPlan.parse(options["faults"]))
        except FaultError as exc:
            raise CommandError(f"--faults: {exc}") from exc
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve(venue, options["host"], options["port"]))
        stats = venue.stats
        frames = ", ".join(f"{conn} {count}" for conn, count in stats.frames_sent.items()) or "none"
        self.stdout.write(
            f"stopped: {stats.connections_accepted} connection(s), frames sent: {frames}, "
            f"{sum(stats.http_served.values())} REST answer(s), {stats.http_not_found} not found"
        )

    def _read(self, path: Path) -> Recording:
        try:
            with path.open(encoding="utf-8") as lines:
                return parse_recording(lines)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
        except RecordingError as exc:
            raise CommandError(f"{path} is not a recording: {exc}") from exc

    async def _serve(self, venue: ReplayVenue, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await venue.start(host, port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        try:
            self._print_urls(venue)
            await stop.wait()
        finally:
            await venue.stop()

    def _print_urls(self, venue: ReplayVenue) -> None:
        recording = venue.recording
        speed = f"{venue.speed:g}x" if venue.speed else "as fast as possible"
        self.stdout.write(f"replaying {recording.exchange or 'a recording'} at {speed}")
        if venue.faults.faults:
            self.stdout.write(f"  faults {venue.faults}")
        for conn, connection in recording.connections.items():
            wait = ", waits for the client's first frame" if connection.waits_for_subscribe else ""
            self.stdout.write(f"  WS    {venue.ws_url(conn)}  ({len(venue.frames[conn])} frames{wait})")
            if connection.addr:
                self.stdout.write(f"          recorded from {connection.addr}")
        self.stdout.write("        (any path works; without ?conn= connections take the recorded conns in turn)")
        self.stdout.write(f"  REST  {venue.http_url}")
        for path in recording.http:
            self.stdout.write(f"          GET {path}")
        self.stdout.write("Ctrl-C to stop.")
        self.stdout.flush()
