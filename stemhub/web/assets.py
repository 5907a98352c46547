"""The page's own script and styles, served by the hub from the package.

URLs carry a hash of the content (``?v=``), so a browser may keep a file for a year
and still gets the new one the moment the hub is upgraded.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

ASSETS_PREFIX = "/assets/stemhub"
_TYPES = {
    "result.js": "text/javascript; charset=utf-8",
    "result.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes of a packaged asset and a short hash of them."""
    data = resources.files("stemhub.web").joinpath("static", name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


def asset_url(prefix: str, name: str) -> str:
    return f"{prefix}{ASSETS_PREFIX}/{name}?v={asset(name)[1]}"


async def serve_asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = _TYPES.get(name)
    if media_type is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    data, digest = asset(name)
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": f'"{digest}"',
        "X-Content-Type-Options": "nosniff",
    }
    return Response(data, media_type=media_type, headers=headers)


__all__ = ["ASSETS_PREFIX", "asset", "asset_url", "serve_asset"]
