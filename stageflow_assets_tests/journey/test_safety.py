"""The journey's safety checks: §86a (stage 1) and the output levels (stage 3)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.journey import safety_terms
from stageflow_assets.journey.safety import (
    LEVELS,
    SafetyMatch,
    SafetyVerdict,
    check_86a,
    check_output,
    normalise,
    precompile,
)

# (prompt, canonical entry expected, what of the prompt it was found as)
DISGUISED_86A = [
    ("S.i.e.g H-e-i-l", "Sieg Heil", "S.i.e.g H-e-i-l"),
    ("siegheil", "Sieg Heil", "siegheil"),
    ("ein Schild mit s1eg-heil darauf", "Sieg Heil", "s1eg-heil"),
    ("SIEG HEIL!!!", "Sieg Heil", "SIEG HEIL"),
    ("Plakat: S i e g   H e i l", "Sieg Heil", "S i e g   H e i l"),
    ("eine Menge ruft Siiieg Heeeil im Fackelschein", "Sieg Heil", "Siiieg Heeeil"),
    ("$!eg h3!l", "Sieg Heil", "$!eg h3!l"),
    ("Ѕіеg Неіl", "Sieg Heil", "Ѕіеg Неіl"),                         # Cyrillic look-alikes
    ("Sieg\u200bHeil", "Sieg Heil", "Sieg\u200bHeil"),                  # zero-width space
    ("Ｓｉｅｇ Ｈｅｉｌ in Neonlicht", "Sieg Heil", "Ｓｉｅｇ Ｈｅｉｌ"),   # full-width letters
    ("Ein Graffito: H3il H1tl3r", "Heil Hitler", "H3il H1tl3r"),
    ("heil_hitler als Benutzername", "Heil Hitler", "heil_hitler"),
    ("a banner reading HAIL HITLER", "Hail Hitler", "HAIL HITLER"),
    ("a crowd chanting hail victory at night", "Hail Victory", "hail victory"),
    ("Gürtelschnalle mit Meine Ehre heisst Treue", "Meine Ehre heißt Treue", "Meine Ehre heisst Treue"),
    ("MEINE EHRE HEIẞT TREUE", "Meine Ehre heißt Treue", "MEINE EHRE HEIẞT TREUE"),
    ("unsere ehre heist treue", "Meine Ehre heißt Treue", "unsere ehre heist treue"),
    ("Schriftzug ein volk, ein reich, ein fuehrer", "Ein Volk, ein Reich, ein Führer",
     "ein volk, ein reich, ein fuehrer"),
    ("Ein Volk ein Reich ein Fuhrer", "Ein Volk, ein Reich, ein Führer", "Ein Volk ein Reich ein Fuhrer"),
    ("Deutschland erwache!", "Deutschland erwache", "Deutschland erwache"),
    ("Transparent mit Alles fuer Deutschland", "Alles für Deutschland", "Alles fuer Deutschland"),
    ("a tattoo saying my honor is loyalty", "My Honour Is Loyalty", "my honor is loyalty"),
    ("Ein Mann zeigt den Hitlergruß", "Hitlergruß", "Hitlergruß"),
    ("zwei Männer beim Hitler-Gruss", "Hitlergruß", "Hitler-Gruss"),
    ("Hitlergrüße auf dem Marktplatz", "Hitlergruß", "Hitlergrüße"),
    ("Briefende: mit deutschem Gruße", "Deutscher Gruß", "deutschem Gruße"),
    ("a man doing a Nazi salute", "Nazi salute", "Nazi salute"),
    ("eine rote Fahne mit Hakenkreuz", "Hakenkreuz", "Hakenkreuz"),
    ("Hakenkreuzfahnen am Rathaus", "Hakenkreuz", "Hakenkreuzfahnen"),
    ("ein riesiges H4k3nkr3uz", "Hakenkreuz", "H4k3nkr3uz"),
    ("die Form des Hakenkreuzes", "Hakenkreuz", "Hakenkreuzes"),
    ("a poster with three SWASTIKAS", "swastika", "SWASTIKAS"),
    ("Uniform mit SS-Runen am Kragen", "Sigrune", "SS-Runen"),
    ("ein SS Totenkopf Ring", "SS-Totenkopf", "SS Totenkopf"),
    ("die Fahne der N.S.D.A.P.", "NSDAP", "N.S.D.A.P"),
    ("Aufnäher der Waffen SS", "Waffen-SS", "Waffen SS"),
    ("Blood & Honour concert poster", "Blood & Honour", "Blood & Honour"),
    ("Combat18 sticker on a lamp post", "Combat 18", "Combat18"),
    ("Viele Grüße, 88!", "88", "Grüße, 88"),
    ("Ich sende dir 88er Grüße", "88", "88er Grüße"),
    ("88 greetings to the comrades", "88", "88 greetings"),
    ("Heil 88", "88", "Heil 88"),
    ("Aufkleber 14/88 an der Laterne", "14/88", "14/88"),
    ("Bis bald. Gruß 18.", "18", "Gruß 18"),
    ("eine IS-Flagge über der Stadt", "IS-Flagge", "IS-Flagge"),
    ("juda verrecke an einer Hauswand", "Juda verrecke", "juda verrecke"),
    ("SA men singing the horst wessel song", "Horst Wessel Song", "horst wessel song"),
    ("ein Hitlerjugend-Aufmarsch", "Hitlerjugend", "Hitlerjugend"),
]

CLEAN_HISTORY_AND_ART = [
    "die Geschichte des Zweiten Weltkriegs",
    "The Nazi regime fell in 1945",
    "Hitler wurde 1933 Reichskanzler; 1945 war der Krieg in Europa zu Ende.",
    "Ein Dokumentarfilm über die Nürnberger Prozesse",
    "Er wurde 1988 in Berlin geboren",
    "Sie ist 18 Jahre alt und studiert Kunst",
    "88 keys on a piano",
    "A grand piano has 88 keys, an upright often 85.",
    "Bus 18 fährt um 14:28 ab",
    "Viele Grüße, bis 18 Uhr!",
    "Viele Grüße aus Zimmer 88",
    "Grüße aus 18 Ländern",
    "Die Seiten 14-88 behandeln die Weimarer Republik",
    "Im Jahr 1488 wurde das Kloster gegründet",
    "Der Preis beträgt 18.88 Euro",
    "Heilbronn liegt am Neckar",
    "Der Sieg der Alliierten brachte Europa die Freiheit",
    "Ein Heiliger auf einem Gemälde der Renaissance, mit Heiligenschein",
    "Bauhaus-Architektur in Dessau, 1925 bis 1932",
    "The Weimar Republic collapsed in 1933",
    "Anne Frank's diary was published in 1947",
    "A memorial for the victims of National Socialism",
    "Das Holocaust-Mahnmal in Berlin im Abendlicht",
    "Setzen Sie einen Haken, ein Kreuz oder einen Punkt",
    "Siegheilung",
    "Sie tat alles für ihre Familie in Deutschland",
    "Er gewann 18 Spiele und verlor 14",
    "In 1988 the band released 14 songs and toured 28 cities",
    "Hail 18 mm in diameter fell on the village",
    "Zimmer 18, Grüße von der Rezeption und bis morgen",
    "Die Ausstellung zeigt Propagandaplakate der 1930er Jahre im historischen Kontext",
]


@pytest.mark.parametrize(("prompt", "term", "found"), DISGUISED_86A)
def test_disguised_86a_content_is_blocked_and_named(prompt, term, found):
    verdict = check_86a(prompt)
    assert verdict.blocked, prompt
    assert verdict.check == "§86a"
    assert (term, found) in [(m.term, m.found) for m in verdict.matches], verdict.matches


def test_the_disguised_table_is_broad():
    assert len(DISGUISED_86A) >= 30
    languages = {m.language for prompt, _, _ in DISGUISED_86A for m in check_86a(prompt).matches}
    categories = {m.category for prompt, _, _ in DISGUISED_86A for m in check_86a(prompt).matches}
    assert languages == {"de", "en"}
    assert {"slogan", "greeting", "symbol", "organisation", "code"} <= categories


@pytest.mark.parametrize("sentence", CLEAN_HISTORY_AND_ART)
def test_history_politics_and_art_pass(sentence):
    verdict = check_86a(sentence)
    assert not verdict.blocked and verdict.matches == (), verdict.summary()
    assert not check_output(sentence, "research").blocked


def test_the_clean_table_is_broad():
    assert len(CLEAN_HISTORY_AND_ART) >= 20


def test_overlapping_entries_are_all_recorded():
    verdict = check_86a("Sieg Heil Hitler")
    assert [m.term for m in verdict.matches] == ["Sieg Heil", "Heil Hitler"]


def test_each_entry_matches_its_own_spellings():
    """A typo in a list entry that the matcher cannot read would silently never match."""
    for term in safety_terms.PARAGRAPH_86A:
        for spelling in term.spellings:
            assert term.canonical in [m.term for m in check_86a(f"x {spelling} x").matches], spelling
    for level, entries in [("research", safety_terms.MINORS_DIRECT), ("adult", safety_terms.ADULT),
                           ("youth", safety_terms.YOUTH), ("kids", safety_terms.KIDS)]:
        for term in entries:
            for spelling in term.spellings:
                found = [m.term for m in check_output(f"x {spelling} x", level).matches]
                assert term.canonical in found, (level, spelling)


def test_entries_are_well_formed():
    all_lists = (safety_terms.PARAGRAPH_86A, safety_terms.MINOR_WORDS, safety_terms.SEXUAL_WORDS,
                 safety_terms.MINORS_DIRECT, safety_terms.ADULT, safety_terms.YOUTH, safety_terms.KIDS)
    for entries in all_lists:
        for term in entries:
            assert term.language in ("de", "en") and term.category and term.canonical.strip()
            assert term.compound in (safety_terms.NO, safety_terms.HEAD, safety_terms.ANY)
    assert len(safety_terms.PARAGRAPH_86A) >= 40
    for entries in (safety_terms.YOUTH, safety_terms.KIDS):
        assert len(entries) >= 30
        assert {t.language for t in entries} == {"de", "en"}


# --- levels ----------------------------------------------------------------------------------------

def blocked_at(text: str) -> dict[str, bool]:
    return {level: check_output(text, level).blocked for level in LEVELS}


def test_a_kids_only_term_passes_at_youth_adult_and_research():
    assert blocked_at("Ein Cowboy mit einer Pistole im Wilden Westen") == {
        "kids": True, "youth": False, "adult": False, "research": False}
    kids = check_output("a zombie in a haunted house", "kids")
    assert [(m.term, m.category, m.language) for m in kids.matches] == [("zombie", "horror", "en")]
    assert kids.check == "output:kids"


@pytest.mark.parametrize("sentence", [
    "A kind woman reading to her grandmother in a garden",
    "Ein Krieger aus Lego auf einer Burg",
    "The bomber jacket is back in fashion",
    "a killer whale jumping out of the sea",
    "Eine Wasserpistole im Sommer",
    "Die Granatapfelblüte im Garten",
    "A knee joint diagram for a biology class",
    "A shooting star over the mountains",
    "Die Gewaltenteilung im Grundgesetz, als Schaubild",
    "Ein Ansporn für junge Künstler",
    "Essex and Sussex in spring, watercolour",
])
def test_kids_level_leaves_words_that_merely_contain_an_entry_alone(sentence):
    assert not check_output(sentence, "kids").blocked, check_output(sentence, "kids").summary()


def test_youth_blocks_hard_drugs_and_adult_does_not():
    assert blocked_at("Ein Mann beim Heroin spritzen") == {
        "kids": True, "youth": True, "adult": False, "research": False}
    # "heroin" takes no ending: a heroine is not a drug
    assert not check_output("a heroine with a shield", "youth").blocked


def test_youth_blocks_self_harm_instructions_and_gore():
    assert check_output("Schritt für Schritt: Anleitung zum Suizid", "youth").matches[0].category == "self-harm"
    assert check_output("a d3capitated knight, very gory", "youth").blocked


def test_adult_blocks_what_is_illegal_everywhere_and_research_does_not():
    assert blocked_at("bestiality") == {"kids": True, "youth": True, "adult": True, "research": False}
    assert not check_output("a nude 25-year-old woman, oil painting", "adult").blocked


def test_86a_blocks_at_every_level_including_research():
    for level in LEVELS:
        verdict = check_output("Ein Poster mit Sieg Heil", level)
        assert verdict.blocked and verdict.check == f"output:{level}"
        assert verdict.matches[0].term == "Sieg Heil"
    assert check_output("Grüße 88", "research").matches[0].category == "code"


@pytest.mark.parametrize("text", [
    "nackte Kinder am Strand",
    "a nude 12-year-old",
    "ein 14-jähriges Mädchen in Dessous",
    "sexy schoolgirl",
    "child pornography",
    "K1nderp0rnografie",
])
def test_the_minors_rule_holds_at_every_level(text):
    for level in LEVELS:
        verdict = check_output(text, level)
        assert verdict.blocked, (level, text)
        assert any(m.category == "minors" for m in verdict.matches)


def test_the_minors_rule_looks_within_one_sentence():
    verdict = check_output("Kinder spielen am Strand. Im Museum hängt ein Akt, eine nackte Frau.", "adult")
    assert not verdict.blocked, verdict.summary()
    combined = check_output("Kinder spielen nackt am Strand", "adult")
    assert [(m.term, m.found) for m in combined.matches] == [("Kinder + nackt", "Kinder spielen nackt")]


def test_default_level_is_youth():
    assert check_output("Heroin").check == "output:youth"
    assert check_output("Heroin").blocked and not check_output("Heroin", "adult").blocked


def test_unknown_level_is_bad_input_naming_it_and_the_valid_ones():
    with pytest.raises(BadInputError) as raised:
        check_output("a cat", "teen")
    message = str(raised.value)
    assert "'teen'" in message and all(level in message for level in LEVELS)
    assert raised.value.retryable is False
    assert raised.value.details == {"level": "teen", "valid": list(LEVELS)}


# --- the confirmation hook -------------------------------------------------------------------------

def test_confirm_can_clear_historical_context():
    seen = []

    def confirm(text, matches):
        seen.append((text, matches))
        return False

    confirm.label = "llm:test-model"
    text = "Der Hitlergruß ist in Deutschland seit 1945 verboten."
    verdict = check_86a(text, confirm)
    assert not verdict.blocked and verdict.cleared
    assert verdict.confirmed_by == "llm:test-model"
    assert [m.term for m in verdict.matches] == ["Hitlergruß"]     # kept for the record
    assert seen == [(text, verdict.matches)]
    assert verdict.summary().endswith("— cleared by llm:test-model")


def test_confirm_can_confirm_and_unlabelled_callables_are_named():
    def really_forbidden(text, matches):
        return True

    verdict = check_output("Hakenkreuz", "adult", really_forbidden)
    assert verdict.blocked and not verdict.cleared
    assert verdict.confirmed_by == "callable:test_confirm_can_confirm_and_unlabelled_callables_are_named.<locals>.really_forbidden"
    assert "confirmed by" in verdict.summary()


def test_confirm_is_not_asked_without_hits_and_only_false_clears():
    def must_not_be_called(text, matches):
        raise AssertionError("called without keyword hits")

    clean = check_86a("Ein Segelboot im Sonnenuntergang", must_not_be_called)
    assert clean == SafetyVerdict("§86a", False, ())
    assert check_86a("Sieg Heil", lambda text, matches: None).blocked   # an unclear answer keeps the block


# --- records -----------------------------------------------------------------------------------------

def test_summary_is_one_line_naming_what_matched():
    assert check_86a("s1eg-heil").summary() == '"Sieg Heil" (slogan, de) written "s1eg-heil"'
    multi = check_output("Sieg\nHeil und eine\nPistole", "kids").summary()
    assert "\n" not in multi
    assert multi == ('"Sieg Heil" (slogan, de) written "Sieg Heil"; '
                     '"Pistole" (weapons, de) written "Pistole"')
    assert check_86a("ein Segelboot").summary() == ""


def test_as_dict_is_json_able():
    verdict = check_86a("Grüße 88")
    record = json.loads(json.dumps(verdict.as_dict()))
    assert record == {
        "check": "§86a", "blocked": True, "confirmed_by": None,
        "matches": [{"term": "88", "category": "code", "found": "Grüße 88", "language": "de"}],
        "summary": '"88" (code, de) written "Grüße 88"',
    }
    assert isinstance(verdict.matches[0], SafetyMatch)


# --- normalisation and speed -------------------------------------------------------------------------

def test_normalise_folds_case_diacritics_and_lookalike_scripts():
    assert normalise("FÜHRER Straße") == "fuhrer strasse"
    assert normalise("Ѕіеg\u00adНеіl") == "siegheil"
    assert normalise("ｈｅｌｌｏ_world") == "hello-world"
    assert normalise("Siiiiieg Heeeeil!!!") == "siieg heeil!!!"      # letters squeezed, signs kept


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalisation_and_checks_never_raise(text):
    normalise(text)
    for match in check_output(text, "kids").matches:
        assert match.found and match.found in text


@settings(max_examples=150, deadline=None)
@given(st.text(), st.text())
def test_a_slogan_between_spaces_is_found_in_any_surroundings(before, after):
    verdict = check_86a(f"{before} Sieg Heil {after}")
    assert verdict.blocked and "Sieg Heil" in [m.term for m in verdict.matches]


def test_a_500_character_prompt_is_checked_in_well_under_10_ms():
    prompt = ("Ein Aquarell im Stil des Bauhaus: eine ruhige Landschaft mit Bergen, einem See, "
              "einem kleinen Dorf und 18 Segelbooten im Abendlicht, 1988 gemalt. ") * 4
    prompt = prompt[:500]
    precompile()
    best = min(_seconds(lambda: (check_86a(prompt), check_output(prompt, "kids"))) for _ in range(20))
    assert best < 0.005, f"{best * 1000:.1f} ms"


@pytest.mark.parametrize("text", ["s" * 5000, "$" * 5000, "s.$!" * 1250, "1|" * 2500, "S i e g " * 600])
def test_pathological_text_is_checked_quickly(text):
    """Letter runs are squeezed and repeats bounded: no pattern backtracks for long."""
    precompile()
    assert _seconds(lambda: check_output(text, "kids")) < 1.0


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start
