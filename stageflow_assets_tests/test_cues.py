from hypothesis import given, settings
from hypothesis import strategies as st

from stageflow_assets.providers.asr import Segment, Transcript, Word
from stageflow_assets.subtitles.cues import MAX_CUE_SECONDS, cues_from_transcript, wrap

WORDS = st.lists(
    st.tuples(st.text("abcdefghij", min_size=1, max_size=12), st.sampled_from(["", ",", "."]),
              st.floats(0.05, 0.8), st.floats(0.0, 2.5)),
    min_size=1, max_size=80,
)


def _transcript(spec) -> Transcript:
    t, words = 0.0, []
    for text, punct, length, gap in spec:
        t += gap
        words.append(Word(start=round(t, 3), end=round(t + length, 3), word=f" {text}{punct}"))
        t += length
    return Transcript(language="en", language_probability=1.0, duration=t,
                      segments=[Segment(start=words[0].start, end=words[-1].end,
                                        text="".join(w.word for w in words), words=words)])


@given(WORDS)
def test_cues_keep_every_word_in_order_with_monotonic_times(spec):
    transcript = _transcript(spec)
    cues = cues_from_transcript(transcript)
    words = [w.word.strip() for w in transcript.segments[0].words]
    assert " ".join(c.text for c in cues).split() == words
    assert [c.index for c in cues] == list(range(1, len(cues) + 1))
    for before, after in zip(cues, cues[1:]):
        assert before.end <= after.start
    for cue in cues:
        assert cue.start < cue.end
        # a single over-long word can't be split; anything else stays within the limit
        assert cue.end - cue.start <= MAX_CUE_SECONDS or len(cue.text.split()) == 1


def test_sentence_ends_start_a_new_cue():
    spec = [("hello", "", 0.3, 0.0), ("there", ",", 0.3, 0.0), ("my", "", 0.2, 0.0),
            ("friend", ".", 0.4, 0.0), ("how", "", 0.2, 0.1), ("are", "", 0.2, 0.0),
            ("you", "", 0.2, 0.0), ("doing", "", 0.3, 0.0), ("today", ".", 0.4, 0.0)]
    cues = cues_from_transcript(_transcript(spec))
    assert [c.text for c in cues] == ["hello there, my friend.", "how are you doing today."]


@given(st.text("abc defgh ijk", max_size=120))
def test_wrap_never_drops_words(text):
    lines = wrap(text)
    assert " ".join(lines).split() == text.split()


def test_wrap_balances_two_lines_within_42():
    lines = wrap("This short video was made by a machine and it says so.")
    assert len(lines) == 2 and all(len(l) <= 42 for l in lines)
    assert abs(len(lines[0]) - len(lines[1])) < 12
