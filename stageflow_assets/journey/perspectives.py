"""The words the journey sends to an LLM: translation prompts, the perspectives of stage 2, and
the languages a seeded Stille Post chain may pass through with an LLM.

All of it is this project's own writing. Bump `PROMPT_VERSION` when any text here changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stageflow_assets.core.languages import language_name

PROMPT_VERSION = "1"

# stage 1 stays close to the prompt; Stille Post lets each hop drift (the original idea's values);
# a perspective is a free rewrite
TRANSLATE_TEMPERATURE = 0.2
STILLE_POST_TEMPERATURE, STILLE_POST_TOP_P = 0.7, 0.9
PERSPECTIVE_TEMPERATURE, PERSPECTIVE_TOP_P = 0.8, 0.9


@dataclass(frozen=True)
class Perspective:
    name: str  # what --perspective takes
    title: str  # for records and reports
    instruction: str  # what the rewrite should do, in English


PERSPECTIVES: dict[str, Perspective] = {p.name: p for p in (
    Perspective(
        "bauhaus", "Bauhaus workshop",
        "Recast the scene as a Bauhaus design exercise: reduce every object to circles, squares "
        "and triangles, use flat primary colours with black and white, show steel, glass and "
        "plywood as what they are, and leave out anything that is only decoration."),
    Perspective(
        "child", "A child's retelling",
        "Retell the scene the way a six-year-old would describe it to a grandparent: short "
        "sentences, everyday words, one or two things that seem enormous or magical, and a "
        "guess about what happens next."),
    Perspective(
        "opposite", "The opposite",
        "Describe the opposite scene: turn day into night, calm into storm, crowded into empty, "
        "large into small, old into new, joy into sorrow, while keeping the same kind of place "
        "so that the two pictures could hang side by side."),
    Perspective(
        "technical", "Technical description",
        "Describe the scene as an engineer's specification: objects as components with estimated "
        "dimensions in metres, materials, light sources with direction and colour temperature, "
        "and camera position, lens and framing. No feelings, no metaphors."),
    Perspective(
        "poem", "A short poem",
        "Turn the scene into an unrhymed poem of four to six short lines that keeps every "
        "important object of the description and ends on a single concrete image."),
    Perspective(
        "photo-1880s", "Caption of an 1880s photograph",
        "Write the scene as the catalogue caption of a photograph taken around 1880 with a "
        "wooden plate camera: a long exposure, so anything that moved is a blur, sepia albumen "
        "print, subjects posed stiffly, and the formal wording of a studio of that time."),
    Perspective(
        "museum-label", "Museum wall label",
        "Write the scene as the wall label of a painting in a museum: an invented title and "
        "year, the medium, and three sentences on what is shown and why it matters to a visitor."),
)}


def translate_system(source: str, target: str) -> str:
    """The system prompt of one LLM translation hop."""
    return (f"You are a translator. Translate the user's text from {language_name(source)} ({source}) "
            f"into {language_name(target)} ({target}). Keep its meaning, tone and line breaks. "
            "Reply with the translation only: no quotation marks, notes or explanations.")


def perspective_system(perspective: Perspective, language: str) -> str:
    """The system prompt of one perspective rewrite, answered in `language`."""
    return (f"You rewrite short descriptions of pictures from a given perspective. {perspective.instruction} "
            f"Write in {language_name(language)} ({language}), in no more than about 120 words. "
            "Reply with the rewritten description only.")


# Languages a seeded Stille Post may visit with an LLM, by continent: consecutive languages of a
# chain come from different continents, so each hop crosses a real linguistic distance.
CONTINENTS: dict[str, tuple[str, ...]] = {
    "Europe": ("en", "de", "fr", "es", "it", "pt", "pl", "fi", "el", "hu", "nl", "sv", "ca", "ro"),
    "Asia": ("ja", "zh", "ko", "hi", "th", "vi", "id", "tr", "bn", "ta", "fa", "he"),
    "Africa": ("sw", "yo", "am", "zu", "ha", "ig", "so", "af"),
    "Americas": ("qu", "gn", "ht", "ay"),
    "Oceania": ("mi", "sm", "to", "fj"),
}


def continent_of(language: str) -> str | None:
    return next((c for c, codes in CONTINENTS.items() if language in codes), None)
