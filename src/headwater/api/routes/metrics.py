"""``/metrics`` in Prometheus's text format, for a scraper and no one else.

The figures name apps, count tasks and show queue depths: not secrets, but a map of the
deployment. So ``/metrics`` needs ``HEADWATER_METRICS_TOKEN`` as a bearer token when one is set
(compared in constant time), and otherwise answers loopback clients only.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request, Response

from headwater.api.deps import get_runtime
from headwater.api.errors import error_response
from headwater.errors import Forbidden, Unauthenticated

router = APIRouter(tags=["Headwater extension"])


def _on_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format: with ``Authorization: Bearer <HEADWATER_METRICS_TOKEN>`` when
    that is set (401 otherwise), else to loopback clients only (403 otherwise)."""
    runtime = get_runtime(request)
    expected = runtime.settings.metrics_token
    if expected is not None:
        if not hmac.compare_digest(_bearer(request).encode(), expected.encode()):
            unknown = Unauthenticated()
            return error_response(
                unknown.status,
                unknown.code,
                unknown.summary,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    elif not _on_loopback(request):
        refused = Forbidden(causes=["/metrics answers loopback clients only"])
        return error_response(refused.status, refused.code, refused.summary, refused.causes)
    body = runtime.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
