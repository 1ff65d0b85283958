"""Local GrowthOS simulator: a faithful server of the GrowthOS Management API for tests."""

from .app import SimServer
from .generate import DEFAULT_KEY

__all__ = ["SimServer", "DEFAULT_KEY"]
