"""The words inbox: a list dropped into `$STAGEFLOW_HOME/inbox/words` becomes (or rebuilds) a deck.

The file name says what to build: `Spanish__Food.en-es.txt` is the deck `Spanish::Food` from
English headwords with Spanish translations (`__` stands for `::`; the `.<lang>-<native>` part is
optional and defaults to English with no translation).
"""


import json
import re
import time
from pathlib import Path

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import sampled_content_hash
from stageflow_assets.core.storage import StageStore
from stageflow_assets.vocabulary.jobs import JOB_TAG, vocabulary_deck_job
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import register_word_list

INBOX = "words"
SUFFIXES = {".txt", ".csv", ".tsv", ".json", ".list"}
MAX_NEW_PER_TICK = 50
SETTLE_SECONDS = 3.0
_LANGS = re.compile(r"^(?P<deck>.+?)\.(?P<lang>[a-z]{2,3})(?:-(?P<native>[a-z]{2,3}))?$")


def deck_settings(path: Path) -> tuple[str, str, str | None]:
    """(deck, language, native) from an inbox file name."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    found = _LANGS.match(stem)
    deck, lang, native = (found["deck"], found["lang"], found["native"]) if found else (stem, "en", None)
    return deck.replace("__", "::").strip(), lang, native


@dg.sensor(
    job=vocabulary_deck_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new or changed word list in the words inbox as a deck and requests its build.",
)
def words_inbox_sensor(context: dg.SensorEvaluationContext, storage: StageStore):
    inbox = storage.paths.inbox(INBOX)
    inbox.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    added: list[str] = []
    requests: dict[str, dg.RunRequest] = {}
    for path in sorted(inbox.iterdir()):
        if len(requests) >= MAX_NEW_PER_TICK:
            break
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in SUFFIXES:
            continue
        stat = path.stat()
        signature = f"{stat.st_size}:{stat.st_mtime_ns}"
        if seen.get(path.name) == signature or now - stat.st_mtime < SETTLE_SECONDS:
            continue
        deck, lang, native = deck_settings(path)
        try:
            job = register_word_list(storage.paths, path, deck, lang, native).job
            content = sampled_content_hash(path)
        except (BadInputError, OSError) as exc:
            context.log.warning(f"words inbox: skipping {path.name}: {exc}")
            continue
        seen[path.name] = signature
        if job not in added and not context.instance.has_dynamic_partition(word_list_partitions.name, job):
            added.append(job)
        # the run key includes the content: an edited list rebuilds, a touched one does not
        requests[job] = dg.RunRequest(partition_key=job, run_key=f"{job}:{content}",
                                      tags={JOB_TAG: job, "stageflow/source": "inbox"})
    return dg.SensorResult(
        run_requests=list(requests.values()),
        dynamic_partitions_requests=[word_list_partitions.build_add_request(added)] if added else [],
        cursor=json.dumps(seen, sort_keys=True),
    )
