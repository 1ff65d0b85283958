"""Endpoint handlers, one module per API area; importing this registers them all."""

from . import (  # noqa: F401
    analytics,
    campaigns,
    contacts,
    referrals,
    segments,
    settings,
    surveys,
    waitlists,
    webhooks,
)
