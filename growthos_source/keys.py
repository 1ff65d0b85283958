"""Free-form keys (traits, properties, metadata) that would collide as column names.

dlt's default naming convention maps every non-ASCII character to `x`, so `{"名前": 1,
"ключ": 2}` would both become column `x` and one value would silently overwrite the other. Keys
with non-ASCII characters are therefore renamed to their ASCII transliteration plus a short
stable hash of the original key (`名前` -> `k_4c2f6d1e`, `émoji_🚀` -> `emoji_k_7a0e11b3`):
distinct keys stay distinct columns, the same key always lands in the same column.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

_cache: dict[str, str] = {}


def ascii_key(key: str) -> str:
    """`key` itself when ASCII, else a stable, collision-free ASCII name for it."""
    if key.isascii():
        return key
    name = _cache.get(key)
    if name is None:
        base = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base).strip("_")
        digest = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
        name = _cache[key] = f"{base}_k_{digest}" if base else f"k_{digest}"
    return name


def ascii_keys(value: Any) -> Any:
    """Rename non-ASCII keys at every depth (dicts are changed in place and returned)."""
    if isinstance(value, dict):
        if any(not isinstance(k, str) or not k.isascii() for k in value):
            items = list(value.items())
            value.clear()
            for k, v in items:
                value[ascii_key(str(k))] = ascii_keys(v)
        else:
            for k, v in value.items():
                if isinstance(v, (dict, list)):
                    value[k] = ascii_keys(v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (dict, list)):
                value[i] = ascii_keys(v)
    return value
