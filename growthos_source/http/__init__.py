"""Everything HTTP: the client and what it is made of, and the walks it runs side by side.

client.py      one API call: auth, pacing, retries (GrowthOSClient)
target.py      where the key may travel: base_url and key checks, path joining
sending.py     one exchange, straight to httpx's transport
decode.py      response bodies as JSON objects
retry.py       the retry policy: what is retried, how long to wait (RetryPolicy)
responses.py   error responses as typed errors (the types: ../errors.py)
pacing.py      the one RateLimiter of a client: the plan's limit, learnt from headers
concurrency.py how many walks advance at once
pagination.py  cursor pagination (Page)
fanout.py      walks run concurrently, their pages handed to the caller's thread
"""

from __future__ import annotations

from .client import ClientStats, GrowthOSClient
from .pagination import Page
from .target import quote_path_segment

__all__ = ["ClientStats", "GrowthOSClient", "Page", "quote_path_segment"]
