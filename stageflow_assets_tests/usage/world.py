"""A day of real work in a home of its own, for the usage, ledger and schedule tests.

Through the real `stageflow` CLI, Claude being the loopback fake: a video subtitled into Spanish
(Whisper, Claude translating), a deck whose words Claude explains through Messages, a deck
through a Message Batch, a journey rewritten as a poem by Claude, a journey blocked at stage 1
(a failed run), and a run cancelled before it started.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets_tests.conftest import CliResult, instance_with_env, run_cli
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY, FakeAnthropic, numbered_cues

MESSAGES_DECK, BATCH_DECK = "Usage::Messages", "Usage::Batch"


def claude_reply(body: dict) -> str:
    """A lexicon answer (structured output), a translation (numbered cues) or a poem."""
    if body.get("output_config"):
        word = body["messages"][0]["content"].split("Headword: ", 1)[1].splitlines()[0]
        return json.dumps({"known": True, "lemma": word, "part_of_speech": "noun",
                           "senses": [{"definition": f"a {word}", "examples": [f"The {word}."], "synonyms": []}],
                           "other_parts_of_speech": [], "translation": f"es-{word}"})
    cues = numbered_cues(body)
    if cues:
        return "\n".join(f"{n}: ES[{text}]" for n, text in cues)
    return "A still lake\nwakes in gold\nbeneath the hills"


@dataclass
class World:
    base: Path
    claude: FakeAnthropic
    env: dict[str, str] = field(default_factory=dict)
    results: dict[str, CliResult] = field(default_factory=dict)
    cancelled_run: str = ""

    @property
    def home(self) -> Path:
        return self.base / "stageflow"

    @property
    def store(self) -> StageStore:
        return StageStore(home=str(self.home))

    def instance(self):
        return instance_with_env(self.env)

    def cli(self, *args, **extra_env) -> CliResult:
        return run_cli(*args, env={**self.env, **extra_env})

    def job(self, what: str) -> str:
        result = self.results[what]
        return (result.value("job") or result.value("journey"))[0]


def make_world(base: Path, speech_video: Path) -> World:
    claude = FakeAnthropic().start()
    claude.handler = claude_reply
    claude.batch_handler = lambda custom_id, params: claude_reply(params)
    world = World(base, claude)
    world.env = {"STAGEFLOW_HOME": str(world.home), "DAGSTER_HOME": str(base / "dagster"),
                 "STAGEFLOW_LANGUAGES": "en,es", "ANTHROPIC_API_KEY": FAKE_KEY,
                 "STAGEFLOW_CLAUDE_BASE_URL": claude.base_url, "STAGEFLOW_TRANSLATION_BACKEND": "claude",
                 "STAGEFLOW_LEXICON": "claude", "STAGEFLOW_CLAUDE_BATCH_POLL_S": "0.05",
                 "STAGEFLOW_LLM_URL": "", "STAGEFLOW_LLM_MODEL": "", "STAGEFLOW_COMFYUI_URL": "",
                 "STAGEFLOW_EVENT_SINK": "", "STAGEFLOW_TIMEZONE": "UTC"}
    video = base / "harbour.mp4"
    shutil.copyfile(speech_video, video)
    world.results["video"] = world.cli("subtitles", video, "--lang", "es")
    words = base / "fruit.txt"
    words.write_text("apple\npear\nplum\n", encoding="utf-8")
    world.results["messages deck"] = world.cli("vocab", words, "--deck", MESSAGES_DECK)
    batch_words = base / "tools.txt"
    batch_words.write_text("hammer\nsaw\nchisel\n", encoding="utf-8")
    world.results["batch deck"] = world.cli("vocab", batch_words, "--deck", BATCH_DECK,
                                            STAGEFLOW_CLAUDE_BATCH_THRESHOLD="2")
    world.results["poem"] = world.cli("journey", "A quiet lake at dawn", "--lang", "en", "--interception", "poem",
                                      "--output", "image:64x64", "--out", base / "poem")
    world.results["blocked"] = world.cli("journey", "A crowd shouting Sieg Heil in a square", "--lang", "en",
                                         "--interception", "stille-post", "--out", base / "blocked")
    for what, result in world.results.items():
        expected = 3 if what == "blocked" else 0
        assert result.returncode == expected, f"{what}: {result.stderr[-3000:]}"
    world.cancelled_run = _cancelled_run(world)
    return world


def _cancelled_run(world: World) -> str:
    """A deck run queued and cancelled before it started (no step ran)."""
    from stageflow_assets.definitions import defs

    job = world.job("messages deck")
    with world.instance() as instance:
        run = instance.create_run_for_job(
            job_def=defs.resolve_job_def("vocabulary_deck_job"), run_config={},
            tags={JOB_TAG: job, "stageflow/domain": "vocabulary", "dagster/partition": job})
        instance.report_run_canceled(run, message="cancelled before it started")
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    return run.run_id
