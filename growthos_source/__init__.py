"""GrowthOS Management API -> warehouse, as a dlt source.

    import dlt
    from growthos_source import growthos, sync

    pipeline = dlt.pipeline("growthos", destination="duckdb", dataset_name="growthos")
    sync(pipeline, growthos())
"""

from .source import growthos
from .sync import sync

__all__ = ["growthos", "sync"]
