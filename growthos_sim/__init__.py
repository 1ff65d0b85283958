"""Local GrowthOS simulator: a faithful server of the GrowthOS Management API (and Ingest API) for tests."""

from .api.ingest import DEFAULT_WRITE_KEY
from .app import SimServer
from .generate import DEFAULT_KEY

__all__ = ["DEFAULT_KEY", "DEFAULT_WRITE_KEY", "SimServer"]
