"""GET /metrics: Prometheus text format of the latency stages per book and the HTTP requests per tier.

The figures are cluster-wide: every process adds its exact bucket counts to shared counters (Redis, or
memory when embedded; see `telemetry`), so any process answers for all and a scrape through a load
balancer sees one monotonic series per book and stage, and per tier. Access: with `HFT_METRICS_TOKEN`
set, `Authorization: Bearer <token>` is required (401 without it); unset, the endpoint is open in
development and absent (404) in production.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator
from typing import cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from apps.orderbook.services.latency import stage_buckets
from apps.tiers.services.timing import tier_buckets
from hftplatform.exceptions import error_body
from telemetry.windows import Buckets

STAGE_METRIC = "hft_latency_seconds"
HTTP_METRIC = "hft_http_request_duration_seconds"
go_float = cast(Callable[[float], str], floatToGoString)  # the `le` spelling Prometheus uses: 5e-05, +Inf


def histogram_family(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], Buckets]]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, histogram in rows:
        buckets = [(go_float(le), float(count)) for le, count in histogram.buckets]
        family.add_metric(values, buckets, sum_value=histogram.sum_s)
    return family


class PlatformCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield histogram_family(
            STAGE_METRIC,
            "Market-data latency per book and stage (exchange_to_receive, receive_to_publish, publish_to_edge, "
            "edge_to_send, publish_to_send), all processes.",
            ["book", "stage"],
            (([book, stage], buckets) for book, stage, buckets in stage_buckets()),
        )
        yield histogram_family(
            HTTP_METRIC,
            "API request duration per tier, from the metering middleware, all processes.",
            ["tier"],
            (([tier], buckets) for tier, buckets in tier_buckets().items()),
        )


def render_metrics() -> bytes:
    return generate_latest(PlatformCollector())


def check_metrics_access(request: HttpRequest) -> int | None:
    """None when the caller may read the metrics, else the status to answer."""
    token = settings.HFT_METRICS_TOKEN
    if not token:
        return 404 if settings.HFT_ENV == "production" else None
    given = request.headers.get("Authorization", "")
    return None if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()) else 401


class MetricsView(View):
    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> HttpResponse:
        status = check_metrics_access(request)
        if status == 404:
            return JsonResponse(error_body("not_found", "No such resource."), status=404)
        if status == 401:
            response = JsonResponse(
                error_body("invalid_metrics_token", "A valid metrics token is required."), status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
