"""Unauthenticated surfaces: landing page, schema, JSON errors, and their per-IP limits."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_ip_counters() -> None:
    cache.clear()


def test_landing_page_says_what_runs_and_links_docs_and_admin(client: Client) -> None:
    page = client.get("/").content.decode()
    assert "running" in page
    assert 'href="/api/docs/"' in page
    assert 'href="/admin/"' in page
    for tier in ("Free", "Basic", "Professional", "Enterprise", "HFT"):
        assert f"<td>{tier}</td>" in page


def test_openapi_schema_lists_rate_limits_and_both_key_schemes(client: Client) -> None:
    schema = client.get("/api/schema/").content.decode()
    assert schema.startswith("openapi: 3")
    assert "/api/hft/rate-limits:" in schema
    assert "ApiKeyBearer" in schema
    assert "X-API-Key" in schema


def test_public_pages_are_limited_per_ip(client: Client, settings: Any) -> None:
    settings.HFT_PUBLIC_RATE = "3/h"
    statuses = [client.get("/", REMOTE_ADDR="198.51.100.7").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/schema/", REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 429
    assert refused.json()["code"] == "ip_rate_limited"
    assert client.get("/", REMOTE_ADDR="198.51.100.8").status_code == 200  # another address


def test_admin_login_attempts_are_limited_per_ip(client: Client, settings: Any) -> None:
    settings.HFT_LOGIN_RATE = "2/h"
    form = {"username": "mallory", "password": "guess", "next": "/admin/"}
    statuses = [client.post("/admin/login/", form, REMOTE_ADDR="203.0.113.5").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # 200: the form again, with "wrong password"
    assert client.get("/admin/login/", REMOTE_ADDR="203.0.113.5").status_code == 200  # reading stays open


def test_unknown_paths_are_json_404(client: Client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
