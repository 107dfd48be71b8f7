"""Bearer-token authentication and resource locations for the Django SCIM project.

django-scim2 delegates authentication to Django: its views answer 401 unless a middleware
before them has put an authenticated ``request.user`` on the request. This is the smallest
such middleware: a request whose ``Authorization: Bearer <token>`` carries a token given at
startup is logged in as one fixed client user; any other request stays anonymous. The client
user is never saved, so it never shows up among the SCIM users. Started without tokens, the
server logs every request in.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse

CLIENT_USER_NAME = "scim-client"


class BearerTokenMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from headwater.testing.servers.django_scim.models import User

        self.get_response = get_response
        self.tokens: tuple[str, ...] = tuple(settings.SCIM_BEARER_TOKENS)
        self.client = User(username=CLIENT_USER_NAME)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.user = self.client if self._accepts(request) else AnonymousUser()
        return self.get_response(request)

    def _accepts(self, request: HttpRequest) -> bool:
        if not self.tokens:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        given = token.strip().encode()
        return any(hmac.compare_digest(given, known.encode()) for known in self.tokens)


def base_location(request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> str:
    """The origin that ``meta.location`` and ``Location`` start with: the request's own.

    django-scim2's default builds it from the fixed ``SCHEME`` and ``NETLOC`` settings; the
    port is only known at startup, and a proxy in front keeps the Host header.
    """
    if request is None:
        return f"http://{settings.SCIM_SERVICE_PROVIDER['NETLOC']}"
    return f"{request.scheme}://{request.get_host()}"
