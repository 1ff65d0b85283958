"""Response bodies as JSON objects: exact where numbers need it, fast where they do not."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from .. import values
from ..errors import MalformedResponseError

__all__ = ["BodyNotJSON", "as_object", "decode"]


class BodyNotJSON(Exception):
    """A 2xx whose body does not parse: usually a connection cut mid-body."""


def decode(response: httpx.Response) -> tuple[Any, bool]:
    """The JSON of a 2xx response ({} for an empty body), None for any other status; and True
    if orjson read the body as it is: strict UTF-8 JSON without a number orjson would round.
    Another JSON reader (pyarrow's, page_batch.py) then reads the same values from it; what
    any other parser read holds something such readers may differ on."""
    if not 200 <= response.status_code < 300:
        return None, False
    if response.status_code == 204 or not response.content:
        return {}, False
    try:
        if values.needs_exact_parse(response.content):
            # orjson would round long numbers: the exact parse keeps them (values.py)
            return values.exact_json(response.content), False
        # orjson parses the event stream's pages ~30% faster; it refuses what json accepts
        # beyond strict UTF-8 JSON (NaN, integers over 64 bits, other charsets).
        return orjson.loads(response.content), True
    except ValueError:
        pass
    try:
        return response.json(), False
    except (ValueError, UnicodeDecodeError):
        # A cut-off body and a proxy's HTML maintenance page are both usually transient;
        # a base_url that points at a website fails the same way after the last attempt.
        ctype = response.headers.get("content-type", "") or "no content type"
        raise BodyNotJSON(f"a body that is not valid JSON ({ctype})") from None


def as_object(body: Any, response: httpx.Response, where: str) -> dict[str, Any]:
    """`body` if it is a JSON object; otherwise the error that base_url is probably wrong."""
    if isinstance(body, dict):
        return body
    raise MalformedResponseError(
        f"{where} returned JSON that is not an object (status {response.status_code}): "
        "check that base_url "
        "points at the GrowthOS API (…/v1)", status=response.status_code)
