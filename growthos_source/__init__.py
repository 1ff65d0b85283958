"""GrowthOS Management API source for dlt."""
