"""`research_bundle`: a day's journeys as research records, in the outbox for whoever collects them.

`$STAGEFLOW_HOME/outbox/records/<day>/`: one RO-Crate per journey whose run ended that day
(`<journey>.crate.zip`, the same export as `stageflow export KEY --format ro-crate`), and
`index.json` / `index.html` listing them. Each file is written whole (a reader never sees half of
one); a crate of a journey no longer in the day's list is taken out.
"""

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import dagster as dg

from stageflow_assets.core.days import TIMEZONE, day_window, days_partitions, ended_at, runs_ended_between
from stageflow_assets.core.hashing import sha256_file, sha256_json
from stageflow_assets.core.paths import StagePaths, write_text_atomic
from stageflow_assets.core.stage import one_line_failures
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.journey.stage_dirs import DOMAIN

CRATE_SUFFIX = ".crate.zip"
INDEX_JSON, INDEX_HTML = "index.json", "index.html"
DOMAIN_TAG = "stageflow/domain"  # every journey_job run carries it


def bundle_dir(paths: StagePaths, day: str) -> Path:
    return paths.root / "outbox" / "records" / day


def journeys_ended_on(instance: dg.DagsterInstance, day: str) -> list[str]:
    """The journeys with a run that ended on `day`, in the order their last run ended."""
    start, end = day_window(day, TIMEZONE)
    keys: dict[str, float] = {}
    for record in runs_ended_between(instance, start, end, tags={DOMAIN_TAG: DOMAIN}):
        key = record.dagster_run.tags.get("dagster/partition")
        if key:
            keys[key] = ended_at(record)
    return sorted(keys, key=keys.get)


def _index_html(day: str, entries: list[dict]) -> str:
    rows = "".join(
        f"<tr><td><a href=\"{escape(e['crate'])}\">{escape(e['journey'])}</a></td><td>{escape(e['title'])}</td>"
        f"<td>{escape(e['status'])}</td><td>{escape(e['created'])}</td><td>{len(e['runs'])}</td>"
        f"<td>{e['bytes']}</td></tr>" for e in entries)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Journeys of {day}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #999;padding:.2em .5em;text-align:left}</style></head><body>"
            f"<h1>Journeys of {day}</h1><p>{len(entries)} research record(s), one RO-Crate each "
            f"(<a href=\"{INDEX_JSON}\">{INDEX_JSON}</a>).</p><table><tr><th>journey</th><th>prompt</th>"
            f"<th>status</th><th>created</th><th>runs</th><th>bytes</th></tr>{rows}</table></body></html>\n")


@dg.asset(partitions_def=days_partitions, group_name=DOMAIN, code_version="1", kinds={"rocrate"})
@one_line_failures
def research_bundle(context: dg.AssetExecutionContext, storage: StageStore) -> dg.MaterializeResult:
    """The research records of one day's journeys (those with a run that ended that day, in
    `STAGEFLOW_TIMEZONE`): one RO-Crate per journey plus `index.json` and `index.html`, in
    `$STAGEFLOW_HOME/outbox/records/<day>/`.

    Partitioned by day: `nightly_research_bundle` writes yesterday's after midnight, and any
    past day can be written again (a backfill), since the records are read back from the event
    log and the journeys' stage dirs.
    """
    from stageflow_assets.records.build import record_for
    from stageflow_assets.records.exports import export

    day, paths = context.partition_key, storage.paths
    folder = bundle_dir(paths, day)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for key in journeys_ended_on(context.instance, day):
        if not paths.job_dir(DOMAIN, key).is_dir():
            context.log.warning(f"journey {key}: its folder is gone (forgotten?); no record in the bundle")
            continue
        record = record_for(context.instance, key, paths)
        crate = export(record, "ro-crate", folder, paths)
        entries.append({"journey": key, "title": record.title, "status": record.status,
                        "created": record.created.isoformat(), "runs": record.run_ids, "crate": crate.name,
                        "sha256": sha256_file(crate), "bytes": crate.stat().st_size})
    kept = {e["crate"] for e in entries}
    for stale in folder.glob(f"*{CRATE_SUFFIX}"):
        if stale.name not in kept:
            stale.unlink()
    index = {"day": day, "timezone": TIMEZONE, "written": datetime.now(timezone.utc).isoformat(),
             "journeys": entries}
    write_text_atomic(folder / INDEX_JSON, json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    write_text_atomic(folder / INDEX_HTML, _index_html(day, entries))
    preview = "| journey | status | prompt |\n|---|---|---|\n" + "\n".join(
        f"| `{e['journey']}` | {e['status']} | {' '.join(e['title'].split())[:60].replace('|', '/')} |" for e in entries[:20])
    return dg.MaterializeResult(
        metadata={"journeys": dg.MetadataValue.int(len(entries)), "path": dg.MetadataValue.path(str(folder)),
                  "index": dg.MetadataValue.path(str(folder / INDEX_HTML)),
                  "preview": dg.MetadataValue.md(preview if entries else "_no journey ended that day_")},
        data_version=dg.DataVersion(sha256_json([(e["journey"], e["sha256"]) for e in entries])[:16]),
    )
