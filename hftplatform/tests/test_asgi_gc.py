"""The ASGI entry point freezes the start-up heap, so full collections walk only what came after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import gc, json, sys; import hftplatform.asgi; "
    "print(json.dumps({'frozen': gc.get_freeze_count(), 'oldest': len(gc.get_objects(2)), "
    "'views_loaded': 'apps.orders.views' in sys.modules}))"
)


def probe(tmp_path: Path, **env: str) -> dict[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "HFT_GC_FREEZE"}}
    clean.update(DJANGO_SETTINGS_MODULE="hftplatform.settings", HFT_VAR_DIR=str(tmp_path), **env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_start_up_heap_is_frozen_with_every_view_loaded(tmp_path: Path) -> None:
    frozen = probe(tmp_path)
    assert frozen["views_loaded"]  # the URLconf was loaded before the freeze, not on the first request
    assert frozen["frozen"] > 50_000
    # What a full collection still walks is a small remainder of what it would walk unfrozen.
    unfrozen = probe(tmp_path, HFT_GC_FREEZE="0")
    assert unfrozen["frozen"] == 0
    assert unfrozen["oldest"] > 50_000
    assert frozen["oldest"] < unfrozen["oldest"] / 20
