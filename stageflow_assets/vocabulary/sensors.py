"""The words inbox: a list dropped into `$STAGEFLOW_HOME/inbox/words` becomes (or rebuilds) a deck;
and the Claude batch sensor, which requests a deck's ingestion run when its Message Batch ends.

The file name says what to build: `Spanish__Food.en-es.txt` is the deck `Spanish::Food` from
English headwords with Spanish translations (`__` stands for `::`; the `.<lang>-<native>` part is
optional and defaults to English with no translation). With the Claude lexicon, a list longer
than its batch threshold starts `claude_batch_job` instead of the one-run deck build.
"""


import json
import re
import time
from pathlib import Path

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import sampled_content_hash
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.lexicon import Lexicon
from stageflow_assets.vocabulary.batch_polling import poll_batch
from stageflow_assets.vocabulary.claude import ClaudeLexicon
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.vocabulary.jobs import claude_batch_ingest_job, claude_batch_job, vocabulary_deck_job
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import register_word_list
from stageflow_assets.vocabulary.wordlist import parse_word_list

INBOX = "words"
SUFFIXES = {".txt", ".csv", ".tsv", ".json", ".list"}
MAX_NEW_PER_TICK = 50
SETTLE_SECONDS = 3.0
MAX_BATCH_POLLS_PER_TICK = 25  # one status call per open batch; the rest wait for the next tick
BATCH_TAG = "stageflow/claude_batch"
_LANGS = re.compile(r"^(?P<deck>.+?)\.(?P<lang>[a-z]{2,3})(?:-(?P<native>[a-z]{2,3}))?$")


def deck_settings(path: Path) -> tuple[str, str, str | None]:
    """(deck, language, native) from an inbox file name."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    found = _LANGS.match(stem)
    deck, lang, native = (found["deck"], found["lang"], found["native"]) if found else (stem, "en", None)
    return deck.replace("__", "::").strip(), lang, native


def build_job_for(path: Path, lexicon: Lexicon) -> str:
    """The job that builds a list with `lexicon`: the Claude batch path for lists above its
    batch threshold, the one-run deck build otherwise."""
    if isinstance(lexicon, ClaudeLexicon):
        try:
            if len(parse_word_list(path).words) > lexicon.batch_threshold:
                return claude_batch_job.name
        except BadInputError:
            pass  # the deck build reports what is wrong with the list
    return vocabulary_deck_job.name


@dg.sensor(
    jobs=[vocabulary_deck_job, claude_batch_job], minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new or changed word list in the words inbox as a deck and requests its build.",
)
def words_inbox_sensor(context: dg.SensorEvaluationContext, storage: StageStore, lexicon: Lexicon):
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
                                      job_name=build_job_for(path, lexicon),
                                      tags={JOB_TAG: job, SOURCE_TAG: "inbox"})
    return dg.SensorResult(
        run_requests=list(requests.values()),
        dynamic_partitions_requests=[word_list_partitions.build_add_request(added)] if added else [],
        cursor=json.dumps(seen, sort_keys=True),
    )


@dg.sensor(
    job=claude_batch_ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls each deck's submitted Claude Message Batch, then its follow-up batch if the "
                "ingestion submitted one (one status call per open batch per tick), and requests an "
                "ingestion run when it ends.",
)
def claude_batch_sensor(context: dg.SensorEvaluationContext, storage: StageStore, lexicon: Lexicon):
    if not isinstance(lexicon, ClaudeLexicon):
        return dg.SkipReason("the lexicon is not Claude (STAGEFLOW_LEXICON=claude): no batches to poll")
    # cursor: batch id → deck, for ended batches whose ingestion was requested (or done)
    handled: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current: set[str] = set()
    requests = []
    asked = 0
    for job in context.instance.get_dynamic_partitions(word_list_partitions.name):
        polled = poll_batch(storage.paths, job, lexicon.claude, handled, ask=asked < MAX_BATCH_POLLS_PER_TICK)
        asked += polled.asked
        current.update(i for i in (polled.submitted_id, polled.batch_id) if i)
        if polled.state == "ingested":
            handled.setdefault(polled.submitted_id, job)  # ingested already (e.g. by the CLI)
        elif polled.state == "unavailable":
            context.log.warning(f"Claude batch {polled.batch_id} ({job}): status unavailable: {polled.error}")
        elif polled.state == "running":
            context.log.info(f"Claude batch {polled.batch_id} ({job}): {polled.status} {polled.counts}")
        elif polled.state == "ended":
            handled[polled.batch_id] = job
            requests.append(dg.RunRequest(
                partition_key=job, run_key=f"{job}:{polled.batch_id}",
                tags={JOB_TAG: job, BATCH_TAG: polled.batch_id, SOURCE_TAG: "claude_batch_sensor"}))
    # forget batches no deck points at any more, so the cursor stays small
    cursor = {batch_id: job for batch_id, job in handled.items() if batch_id in current}
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
