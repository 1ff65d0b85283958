"""Where the API key may travel: base_url and key checks, and paths joined under base_url.

The bearer key only ever travels to the configured origin: redirects are not followed and
cursors are sent as query parameters to our own host, never requested as URLs (dlt's generic
REST client forwards the token to absolute ``next`` URLs on any host; this one cannot).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import API_KEY_HINT, ConfigurationError, redact

__all__ = ["Secret", "Target", "clean_key", "quote_path_segment", "safe_params",
           "validate_base_url"]

_SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "auth")


class Secret:
    """Holds the key so that repr() of the client or of vars(client) never shows it."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def quote_path_segment(value: str) -> str:
    """Percent-encode an opaque id for use as one path segment ("/" and "?" included)."""
    return urllib.parse.quote(str(value), safe="")


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    default = 443 if url.scheme == "https" else 80
    return (url.scheme, url.host, url.port or default)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(base_url: str) -> httpx.URL:
    """The API's base URL, or a ConfigurationError saying what is wrong with it and the fix."""
    fix = "set sources.growthos.base_url to e.g. https://api.growthos.io/v1"
    shown = redact(str(base_url).split("?")[0].split("#")[0])
    try:
        url = httpx.URL(str(base_url).strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ConfigurationError(f"base_url {shown!r} is not a valid URL: {fix}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url {shown!r} is not an http(s) URL with a host: {fix}")
    if url.userinfo or url.query or url.fragment:
        raise ConfigurationError(
            "base_url must not contain credentials, a query or a fragment (the key goes in "
            f"sources.growthos.api_key): {fix}"
        )
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConfigurationError(
            f"base_url {shown!r} uses plain http to a non-local host, which would expose the "
            f"API key: use https ({fix})"
        )
    return url.copy_with(path=url.path.rstrip("/") or "/")


def clean_key(api_key: str | None) -> str:
    """The key without a "Bearer " prefix or padding, or a ConfigurationError."""
    key = (api_key or "").strip()
    if key[:7].lower() == "bearer ":
        key = key[7:].strip()
    if not key:
        raise ConfigurationError(f"no GrowthOS API key configured: {API_KEY_HINT}")
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise ConfigurationError(
            f"the API key contains spaces, control or non-ASCII characters: {API_KEY_HINT}"
        )
    return key


class Target:
    """The configured origin: every request URL is built (or checked) here."""

    def __init__(self, base: httpx.URL) -> None:
        self.base = base

    def url_for(self, path: str) -> tuple[httpx.URL, str]:
        """(absolute URL, path relative to base_url) of `path`; refuses other origins."""
        if "://" in path or path.startswith("//"):
            url = httpx.URL(path)
            if _origin(url) != _origin(self.base):
                raise ConfigurationError(
                    f"refusing to send the API key to {url.scheme}://{url.host}: only "
                    f"{self.base.scheme}://{self.base.host} is configured"
                )
            return url, url.path
        if "?" in path or "#" in path:
            raise ConfigurationError(f"path {path!r} must not contain '?' or '#': use params")
        rel = "/" + path.lstrip("/")
        return self.base.copy_with(path=self.base.path.rstrip("/") + rel), rel


def safe_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters as they may be logged: values of secret-sounding names masked."""
    return {k: "***" if any(w in k.lower() for w in _SECRET_PARAM_WORDS) else v
            for k, v in params.items()}
