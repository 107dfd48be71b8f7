"""``Link`` headers as Okta pages: ``rel="self"`` first, ``next`` last (pages: ``db.paging``)."""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import urlencode

from fastapi import Request, Response

__all__ = ["clamp_limit", "set_link_headers"]

T = TypeVar("T")


def set_link_headers(
    request: Request, response: Response, next_cursor: str | None, limit: int
) -> None:
    """``Link: <self>; rel="self"`` then, if there is more, ``<next>; rel="next"``."""
    base = str(request.url.remove_query_params(["after"]))
    links = [f'<{request.url}>; rel="self"']
    if next_cursor:
        params = dict(request.query_params)
        params["after"] = next_cursor
        params["limit"] = str(limit)
        links.append(f'<{base.split("?")[0]}?{urlencode(params)}>; rel="next"')
    for link in links:
        response.headers.append("Link", link)


def clamp_limit(limit: int | None, default: int, maximum: int) -> int:
    """Okta caps page sizes silently rather than failing."""
    if limit is None or limit <= 0:
        return default
    return min(limit, maximum)
