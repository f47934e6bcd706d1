"""Cue building from word timings: hard rules hold or the QC flags the cue (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from stageflow_assets.providers.asr import Word
from stageflow_assets.subtitles import qc
from stageflow_assets.subtitles.linebreak import break_lines, graphemes
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.segmenter import build_cues

RULES = SubtitleRules()
TOKENS = st.sampled_from(
    "the a cat sat on mat and but dog, house. quickly extraordinary Mr. yes? of to in "
    "internationalisation supercalifragilistic x".split()
)


@st.composite
def word_streams(draw):
    t, words = draw(st.floats(0, 3)), []
    for token in draw(st.lists(TOKENS, min_size=1, max_size=120)):
        t += draw(st.floats(0.0, 1.6))
        length = draw(st.floats(0.04, 1.2))
        words.append(Word(start=round(t, 3), end=round(t + length, 3), word=f" {token}"))
        t += length
    return words


@settings(max_examples=300, deadline=None)
@given(word_streams(), st.sampled_from([23.976, 24.0, 25.0, 30.0]))
def test_cues_satisfy_hard_rules_or_are_flagged(words, fps):
    cues = build_cues(words, "en", RULES, fps)
    assert " ".join(c.text for c in cues).split() == [w.word.strip() for w in words]
    lined = [qc.QcCue(c.index, c.start, c.end, break_lines(c.text, "en", 42)) for c in cues]
    found = qc.violations(lined, "en", RULES, fps)
    assert found["overlap"] == found["non_monotonic"] == found["empty"] == []
    flagged = {rule: {v["cue"] for v in found[rule]} for rule in ("line_length", "line_count", "duration", "frame_gap")}
    for i, cue in enumerate(lined):
        duration = cue.end - cue.start
        assert (all(graphemes(l) <= 42 for l in cue.lines) or cue.index in flagged["line_length"])
        assert len(cue.lines) <= 2 or cue.index in flagged["line_count"]
        assert (RULES.min_duration_s - 1e-3 <= duration <= RULES.max_duration_s + 1e-3) or cue.index in flagged["duration"]
        if i + 1 < len(lined):
            gap = (lined[i + 1].start - cue.end) * fps
            assert RULES.gap_ok(gap) or cue.index in flagged["frame_gap"]
            assert abs(gap - 2) < 0.05 or gap > 11.9, (i, gap)  # the builder chains every short gap


def test_breaks_at_sentence_ends_and_keeps_article_with_noun():
    text = "And then the old man walked slowly to the house. She was waiting at the door for him."
    t, words = 0.0, []
    for token in text.split():
        words.append(Word(start=t, end=t + 0.3, word=f" {token}"))
        t += 0.32
    cues = build_cues(words, "en", RULES, 25)
    assert cues[0].text.endswith("house.")
    for cue in cues:
        for line in break_lines(cue.text, "en", 42):
            assert line.split()[-1].lower() not in {"the", "a", "to", "at"}


def test_short_gaps_are_chained_and_min_duration_extends_into_silence():
    words = [Word(start=0.0, end=0.3, word=" Hi."), Word(start=0.5, end=0.8, word=" Yes."),
             Word(start=5.0, end=5.3, word=" Later on, friends.")]
    cues = build_cues(words, "en", RULES.model_copy(update={"pause_split_s": 0.1}), 25)
    assert [c.text for c in cues] == ["Hi.", "Yes.", "Later on, friends."]
    assert cues[0].end == round(0.5 - 2 / 25, 3)  # 0.2 s gap (5 frames) closed to 2 frames
    assert round(cues[1].end - cues[1].start, 3) >= round(5 / 6, 3)  # extended into silence


def test_line_breaking_prefers_punctuation_and_balance():
    assert break_lines("I came home late, and everybody was already asleep upstairs.", "en", 42) == [
        "I came home late,", "and everybody was already asleep upstairs."
    ]
    assert break_lines("Short line.", "en", 42) == ["Short line."]
    lines = break_lines("Cada fase en la tubería es una ventaja maestra muy grande", "es", 42)
    assert all(graphemes(l) <= 42 for l in lines) and lines[0].split()[-1] not in {"la", "en", "una"}
