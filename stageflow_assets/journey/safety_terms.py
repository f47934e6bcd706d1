"""The journey safety checks' own term lists (written for this project, German and English).

Each `Term` is one list entry: its canonical spelling, other spellings of the same entry (`forms`),
a category and the entry's language. Spellings are written plainly (umlauts, ß, hyphens); the
matcher in `safety.py` makes them robust against case, ae/oe/ue/ss spellings, look-alike digits,
spacing, punctuation and endings.

`inflect`: the last word may carry an ending (German -e/-en/-em/-er/-es/-n/-s; English
-s/-es/-d/-ed/-ing). Off for fixed slogans and where an ending makes another word
("Heroin" + e = "heroine"). `compound`: HEAD lets the entry start a longer word
("Hakenkreuz" → "Hakenkreuzfahne"); ANY also lets it end one ("Riesenhakenkreuz"). Only for
entries no ordinary word starts (or contains) — "porn" is HEAD only, since "Ansporn" exists.
"""

from __future__ import annotations

from dataclasses import dataclass

NO, HEAD, ANY = "no", "head", "any"


@dataclass(frozen=True)
class Term:
    """One list entry and how freely it may be written."""

    canonical: str
    category: str
    language: str
    forms: tuple[str, ...] = ()
    inflect: bool = True
    compound: str = NO

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.canonical, *self.forms)


def _terms(category: str, language: str, *entries, inflect: bool = True, compound: str = NO) -> tuple[Term, ...]:
    """Entries of one category and language; an entry is a string or (canonical, *forms)."""
    out = []
    for entry in entries:
        canonical, *forms = (entry,) if isinstance(entry, str) else entry
        out.append(Term(canonical, category, language, tuple(forms), inflect, compound))
    return tuple(out)


# §86a StGB: slogans, greetings, symbols' names and names of banned organisations used as
# Kennzeichen. Words that only name the era ("Nazi", "Hitler", "Reich", "Führer") are not entries:
# history is not a Kennzeichen.
PARAGRAPH_86A: tuple[Term, ...] = (
    *_terms("slogan", "de",
            "Sieg Heil", "Heil Hitler", ("Heil mein Führer", "Heil, Führer"),
            ("Ein Volk, ein Reich, ein Führer", "ein Volk ein Reich ein Führer"),
            ("Meine Ehre heißt Treue", "Unsere Ehre heißt Treue"), "Blut und Ehre",
            "Deutschland erwache", "Juda verrecke", "Alles für Deutschland",
            "Führer befiehl, wir folgen", inflect=False),
    *_terms("slogan", "de", "Horst-Wessel-Lied", compound=HEAD),
    *_terms("slogan", "en",
            "Hail Hitler", "Hail Victory", ("One People, One Reich, One Leader", "one people one empire one leader"),
            ("My Honour Is Loyalty", "my honor is loyalty", "our honour is loyalty", "our honor is loyalty"),
            "Germany Awake", "Horst Wessel Song", inflect=False),
    *_terms("greeting", "de",
            ("Hitlergruß", "Hitler-Gruß", "Hitler Gruß"), "Kühnengruß", compound=HEAD),
    *_terms("greeting", "de", ("Deutscher Gruß", "deutschen Gruß", "deutschem Gruß", "deutschem Gruße")),
    *_terms("greeting", "en", "Hitler salute", "Nazi salute"),
    *_terms("symbol", "de", "Hakenkreuz", compound=ANY),
    *_terms("symbol", "en", "swastika", compound=ANY),
    *_terms("symbol", "de",
            ("Sigrune", "Siegrune", "Sig-Rune", "Doppelsigrune", "SS-Rune"),
            ("SS-Totenkopf", "Totenkopf der SS"), "Parteiadler", "Nazi-Flagge", "Nazi-Fahne",
            ("Hitlerjugend-Raute", "HJ-Raute"),
            ("IS-Flagge", "IS-Fahne", "ISIS-Flagge", "ISIS-Fahne"), "Hamas-Flagge", "Hisbollah-Flagge",
            "PKK-Flagge"),
    *_terms("symbol", "en",
            ("SS runes", "SS rune", "sig runes", "sig rune", "double sig rune"),
            ("SS death's head", "SS deaths head", "SS skull"), "Nazi flag", "Nazi eagle", "Nazi banner",
            ("ISIS flag", "ISIL flag", "Islamic State flag"), "Hamas flag",
            ("Hezbollah flag", "Hizbollah flag"), "PKK flag"),
    *_terms("organisation", "de",
            "NSDAP", "Waffen-SS", "Schutzstaffel", "Sturmabteilung", "Bund Deutscher Mädel",
            "Wiking-Jugend", "Heimattreue Deutsche Jugend", "Nationalistische Front"),
    *_terms("organisation", "de", "Hitlerjugend", compound=HEAD),
    *_terms("organisation", "en",
            "Hitler Youth", ("Blood & Honour", "Blood and Honour", "Blood and Honor", "Blood & Honor"),
            "Combat 18", "Hammerskins", "League of German Girls"),
)

# Numbers that stand for a slogan or a banned organisation: (code, language, what it stands for).
# A bare number is never enough; see `safety.py` for the context that makes it a code.
NUMERIC_CODES: tuple[tuple[str, str, str], ...] = (
    ("14/88", "en", "Fourteen Words + Heil Hitler"),
    ("1488", "en", "Fourteen Words + Heil Hitler"),
    ("88", "de", "Heil Hitler"),
    ("18", "de", "Adolf Hitler"),
    ("28", "en", "Blood & Honour"),
    ("14", "en", "Fourteen Words"),
)

# The minors rule (every output level): words for children and words for sexual content in one
# sentence, plus the direct terms below.
MINOR_WORDS: tuple[Term, ...] = (
    *_terms("minor", "en",
            ("child", "children", "child's"), "kid", "underage", "toddler", "infant", "preteen", "teen",
            "teenager", "little girl", "little boy", "young girl", "young boy", "schoolgirl", "schoolboy"),
    # "Kind" alone would also hit the English "kind" ("a kind of"): only its unambiguous forms
    *_terms("minor", "de",
            ("Kinder", "Kindes", "Kindern", "ein Kind", "das Kind", "dem Kind", "einem Kind", "kleines Kind"),
            "Kleinkind", "Säugling", "minderjährig", "Mädchen", "Schulmädchen", "Schüler", ("Schülerin", "Schülerinnen"),
            "Teenie", ("Jugendliche", "Jugendlicher")),
)
SEXUAL_WORDS: tuple[Term, ...] = (
    *_terms("sexual", "en", "nude", "naked", "nudity", "sexy", "sex", "erotic", "lingerie", "topless",
            "seductive", "undressed"),
    *_terms("sexual", "en", "porn", compound=HEAD),
    *_terms("sexual", "de", "nackt", "Nacktheit", "erotisch", "Erotik", "Dessous", "oben ohne",
            "verführerisch", "entkleidet"),
    *_terms("sexual", "de", "Porno", compound=HEAD),
)
MINORS_DIRECT: tuple[Term, ...] = (
    *_terms("minors", "de", ("Kinderporno", "Kinderpornographie", "Kinderpornografie"),
            "Missbrauchsdarstellung", compound=HEAD),
    *_terms("minors", "en", ("child porn", "child pornography"), compound=HEAD),
    *_terms("minors", "en", "CSAM", "child sexual abuse material", "lolicon", "shotacon", "jailbait"),
)

# adult: only what is illegal everywhere, on top of §86a and the minors rule
ADULT: tuple[Term, ...] = (
    *_terms("illegal", "en", "bestiality", "zoophilia", "necrophilia", ("snuff film", "snuff video", "snuff movie"),
            "rape porn", "revenge porn", "deepfake porn", "non-consensual porn"),
    *_terms("illegal", "de", "Sodomie", "Zoophilie", "Nekrophilie", "Tierporno", "Snuff-Film", "Snuff-Video",
            "Vergewaltigungsporno", "Rachepornos", "Deepfake-Porno", compound=HEAD),
)

# youth: explicit sexual content, graphic violence and gore, hard drugs, self-harm instructions
YOUTH: tuple[Term, ...] = (
    *_terms("explicit", "en", "porn", "hentai", compound=HEAD),
    *_terms("explicit", "en", "explicit sex", "sex scene", "sexual intercourse", "intercourse", ("orgy", "orgies"),
            "blowjob", ("masturbation", "masturbating", "masturbate"), "genitals", "erect penis", "cumshot",
            "gangbang", "group sex"),
    *_terms("explicit", "de", "Porno", compound=HEAD),
    *_terms("explicit", "de", "Sexszene", "Geschlechtsverkehr", "Orgie", "masturbieren",
            "Genitalien", "erigierter Penis", "Gruppensex"),
    *_terms("gore", "en", "gory", "gruesome", ("dismember", "dismemberment"), ("decapitation", "decapitated"),
            ("beheading", "beheaded"), ("disembowel", "disembowelled", "disemboweled"), ("mutilation",
            "mutilated"), "entrails", "splatter", "torture porn", "severed head", "mangled corpse",
            "blood and guts"),
    *_terms("gore", "de", "zerstückelt", ("Enthauptung", "enthauptet"), "ausgeweidet", "Eingeweide",
            ("Verstümmelung", "verstümmelt"), ("abgetrennter Kopf", "abgetrennten Kopf"),
            "Leichenteile", "Gedärme"),
    # "heroin" takes no ending: "heroine" is a word
    *_terms("hard drugs", "en", "heroin", inflect=False),
    *_terms("hard drugs", "en", "cocaine", "crack cocaine", "crystal meth", "meth", "methamphetamine",
            "fentanyl", "snorting coke"),
    *_terms("hard drugs", "de", ("Heroin", "Heroins"), inflect=False),
    *_terms("hard drugs", "de", "Kokain", "Crystal Meth", "Methamphetamin", "Fentanyl", "Drogen spritzen",
            "Koks schnupfen"),
    *_terms("self-harm", "en", "how to kill yourself", "how to commit suicide", "suicide method",
            "slit your wrists", "ways to end your life", "pro-ana", inflect=False),
    *_terms("self-harm", "de", "Suizidmethode", "Selbstmordmethode", "Anleitung zum Suizid",
            "Anleitung zum Selbstmord", "wie bringe ich mich um", "Pulsadern aufschneiden", compound=HEAD),
)

# kids: all of youth plus violence, weapons, horror, sexual content, drugs and alcohol, self-harm
KIDS: tuple[Term, ...] = (
    # no "war": German "war" is "was"
    *_terms("violence", "en", "kill", ("murder", "murderer"), ("blood", "bloody"), ("stab", "stabbed", "stabbing"),
            ("violence", "violent"), "massacre", "warfare", "battlefield", "torture", "bloodbath"),
    *_terms("violence", "de", ("töten", "tötet", "getötet"), ("Mord", "Mörder"), ("ermorden", "ermordet"), "Blut", "blutig",
            "Gewalt", "Massaker", "Folter", ("erstechen", "erstochen"), ("erschießen", "erschossen"),
            "Blutbad", "Gemetzel"),
    # no ending: "Krieger" (a warrior) is fine for children
    *_terms("violence", "de", ("Krieg", "Kriege", "Krieges", "Kriegs", "Kriegen"), inflect=False),
    *_terms("weapons", "en", "gun", "handgun", "rifle", "assault rifle", "pistol", "machine gun", "grenade",
            "bomb", "explosive", "weapon", "revolver"),
    *_terms("weapons", "de", "Waffe", "Pistole", "Gewehr", "Sturmgewehr", "Maschinengewehr", "Granate", "Bombe",
            "Sprengstoff"),
    *_terms("horror", "en", "horror", "zombie", "corpse", "demon", "undead"),
    *_terms("horror", "de", "Leiche", "Dämon", "Untote"),
    *_terms("sexual content", "en", "sex", "sexy", ("sexual", "sexually"), "nude", "naked", "nudity", "erotic", "lingerie",
            "topless"),
    *_terms("sexual content", "de", "sexuell", "nackt", "Nacktheit", "erotisch", "Erotik", "Dessous",
            "oben ohne"),
    *_terms("drugs", "en", "drug", "cannabis", "marijuana", "alcohol", "drunk", "cigarette", "smoking a joint"),
    # no "joint": a knee joint
    *_terms("drugs", "de", "Drogen", "Marihuana", "Alkohol", "betrunken", "Zigarette", "kiffen"),
    *_terms("self-harm", "en", "suicide", "self-harm"),
    *_terms("self-harm", "de", "Suizid", "Selbstmord", "Selbstverletzung", "Selbsttötung", "sich ritzen"),
)
