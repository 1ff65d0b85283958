"""Dagster definitions for the GrowthOS sync: one asset per table, via dagster-dlt.

    pip install -e '.[dagster]'
    dagster dev -f deploy/dagster/growthos_dagster.py

`dlt_assets` (dagster-dlt) turns every table of the source into an asset. The assets run our
`sync()` rather than dagster-dlt's `DagsterDltResource.run()`: that one drops the pipeline's
local state and pending packages before each run, which would throw away what a crashed run
left instead of finishing it, and skips deletes and the run ledger. A subset materialization
syncs only the selected tables. Configuration is dlt's usual (`.dlt/`, SOURCES__GROWTHOS__*).
"""


from collections.abc import Iterator
from typing import Any

import dlt
from dagster import AssetExecutionContext, Definitions, MaterializeResult
from dagster_dlt import DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from growthos_source import growthos, sync


def growthos_assets(pipeline: dlt.Pipeline | None = None, **source_kwargs: Any) -> Any:
    """The assets of `growthos(**source_kwargs)` loaded by `pipeline` (default: pipeline
    `growthos` into the configured DuckDB file, dataset `growthos`)."""
    pipeline = pipeline or dlt.pipeline(pipeline_name="growthos", destination="duckdb",
                                        dataset_name="growthos")
    source = growthos(**source_kwargs)
    translator = DagsterDltTranslator()

    @dlt_assets(dlt_source=source, dlt_pipeline=pipeline, name="growthos", group_name="growthos",
                dagster_dlt_translator=translator)
    def growthos_tables(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        keys = {translator.get_asset_spec(DltResourceTranslatorData(resource=r, pipeline=pipeline))
                .key: name for name, r in source.selected_resources.items()}
        chosen = {k: n for k, n in keys.items() if k in context.selected_asset_keys}
        result = sync(pipeline, growthos(**source_kwargs).with_resources(*chosen.values()))
        for key, name in chosen.items():
            yield MaterializeResult(asset_key=key, metadata={"rows_loaded":
                                                             result.rows.get(name, 0)})

    return growthos_tables


def definitions() -> Definitions:
    return Definitions(assets=[growthos_assets()])


if __name__ != "__main__" and __name__ != "growthos_dagster_test":
    defs = definitions()
