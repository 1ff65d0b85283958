"""Endpoint handlers, one module per API area; importing this registers them all."""

from . import analytics, campaigns, contacts, referrals, segments, settings, surveys, waitlists, webhooks  # noqa: F401
