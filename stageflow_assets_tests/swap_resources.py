"""A domain's definitions with some resources swapped by key, as tests swap providers."""

import dagster as dg


def with_resources(defs: dg.Definitions, **overrides) -> dg.Definitions:
    """`defs` with `overrides` in place of its resources of the same keys, executed in process
    (`Definitions.merge` refuses two objects for one key, so this builds the definitions anew)."""
    return dg.Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
        sensors=defs.sensors, schedules=defs.schedules,
        resources={**(defs.resources or {}), **overrides}, executor=dg.in_process_executor,
    )
