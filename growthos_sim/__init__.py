"""Local GrowthOS simulator: a faithful server of the GrowthOS Management API for tests."""
