"""Stage 1's translation and stage 2's interception, as plain functions returning `Hop`s.

Every hop is a real translation or rewrite: a pair no backend serves is a `BadInputError` naming
the pair, never a copy of the text. Backends: Apertium (offline, Debian pairs) and one LLM
(`ChatBackend`: Claude or a chat endpoint). When both serve a pair, `prefer` decides; the default
is Apertium — offline, free and deterministic, so a record can be replayed exactly.

Stille Post chains: `--via` gives the languages, then back to the working language. Otherwise
the seed picks them — with an LLM, languages from a different continent at every hop (perspectives
.CONTINENTS); offline, a random walk over the installed Apertium pairs that is back in the working
language after exactly N hops, visiting new languages where the pairs allow.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.languages import is_known
from stageflow_assets.core.redact import scrub
from stageflow_assets.journey import perspectives as p
from stageflow_assets.journey.perspectives import PERSPECTIVES, Perspective
from stageflow_assets.providers.chat import WHAT_TO_SET, ChatBackend, llm_from_env
from stageflow_assets.providers.translate import ApertiumTranslator

__all__ = ["MAX_HOPS", "PERSPECTIVES", "STILLE_POST", "ChatBackend", "Hop", "Perspective", "Translators",
           "intercept", "interception_names", "llm_from_env", "run_perspective", "stille_post",
           "stille_post_chain", "translate_prompt"]

MAX_HOPS = 8
STILLE_POST = "stille-post"
_SECRET_KEYS = {"api_key", "apikey", "authorization", "password", "token", "x-api-key"}
_pairs_cache: dict[tuple[str, str | None], frozenset[tuple[str, str]]] = {}


@dataclass(frozen=True)
class Hop:
    index: int  # 1..N (stage_iteration); 0 for stage 1's translation
    source: str  # ISO 639-1
    target: str
    text: str
    backend: str  # "apertium" | "claude" | "chat" | "none" (same language)
    model: str | None  # Apertium mode, Claude model, endpoint model
    parameters: dict  # everything passed to the backend, credentials redacted
    duration_s: float
    metadata: dict = field(default_factory=dict)  # what came back besides the text (usage, unknown words, chain)


def _language(code: str) -> str:
    code = (code or "").strip().lower()
    if not is_known(code):
        raise BadInputError(f"unknown language code {code!r}: use an ISO 639-1 code such as de, en, es")
    return code


def _clean(parameters: dict[str, Any]) -> dict[str, Any]:
    """No credential survives into a record, whatever a backend put in."""
    return {k: scrub(v) if isinstance(v, str) else v for k, v in parameters.items()
            if k.lower() not in _SECRET_KEYS}


class Translators:
    """Apertium and, optionally, one LLM; `prefer` ("apertium" | "llm") picks when both can."""

    def __init__(self, apertium: ApertiumTranslator, llm: ChatBackend | None = None,
                 prefer: str = "apertium") -> None:
        if prefer not in ("apertium", "llm"):
            raise BadInputError(f"prefer={prefer!r}: use apertium or llm")
        self.apertium, self.llm, self.prefer = apertium, llm, prefer

    def backend_for(self, source: str, target: str) -> str | None:
        """"none" (same language), "apertium", "llm", or None when nothing serves the pair."""
        if source == target:
            return "none"
        llm = self.llm is not None and is_known(source) and is_known(target)
        if llm and self.prefer == "llm":
            return "llm"
        if self.apertium.mode_for(source, target) is not None:
            return "apertium"
        return "llm" if llm else None

    def can(self, source: str, target: str) -> bool:
        return self.backend_for(source.strip().lower(), target.strip().lower()) is not None

    def unserved(self, source: str, target: str) -> BadInputError:
        return BadInputError(f"no translation backend for {source}→{target}: {WHAT_TO_SET}",
                             source=source, target=target)

    def apertium_pairs(self) -> frozenset[tuple[str, str]]:
        """Every (source, target) of ISO 639-1 codes an installed Apertium mode serves."""
        key = (self.apertium.apertium, os.environ.get("APERTIUM_DATADIR"))
        if key not in _pairs_cache:
            import pycountry

            codes = sorted(lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2"))
            _pairs_cache[key] = frozenset((s, t) for s in codes for t in codes
                                          if s != t and self.apertium.mode_for(s, t) is not None)
        return _pairs_cache[key]

    def translate(self, text: str, source: str, target: str, index: int = 0, **llm_options: Any) -> Hop:
        """One hop. `llm_options` (temperature, top_p, seed) reach the LLM only."""
        source, target = _language(source), _language(target)
        backend, start = self.backend_for(source, target), time.perf_counter()
        if backend is None:
            raise self.unserved(source, target)
        if backend == "none":
            return Hop(index, source, target, text, "none", None, {}, 0.0)
        if backend == "apertium":
            mode = self.apertium.mode_for(source, target)
            lines, unknown = self.apertium.translate(text.split("\n"), source, target)
            return Hop(index, source, target, "\n".join(lines), "apertium", mode, {"mode": mode},
                       round(time.perf_counter() - start, 4), {"unknown_words": unknown})
        options = {"temperature": p.TRANSLATE_TEMPERATURE, **llm_options}
        reply, model, parameters = self.llm.complete(p.translate_system(source, target), text, **options)
        usage = parameters.pop("usage", None)
        return Hop(index, source, target, reply, self.llm.name, model,
                   _clean({"task": "translate", "prompt_version": p.PROMPT_VERSION, **parameters}),
                   round(time.perf_counter() - start, 4), {"usage": usage} if usage else {})


def translate_prompt(text: str, source: str, target: str, translators: Translators) -> Hop:
    """Stage 1: the prompt in the working language (hop 0)."""
    if not text.strip():
        raise BadInputError("the prompt is empty: nothing to translate")
    return translators.translate(text, source, target, index=0, temperature=p.TRANSLATE_TEMPERATURE)


def stille_post_chain(work_lang: str, translators: Translators, *, iterations: int | None = None,
                      via: list[str] | None = None, seed: int = 0) -> list[str]:
    """The languages of a chain, working language first and last (N hops: N + 1 entries).
    `iterations` None: 8, or len(via) + 1 with `via`. Every hop is checked before any runs."""
    work = _language(work_lang)
    if via:
        chain = [work, *(_language(v) for v in via), work]
        n = len(chain) - 1
        if iterations is not None and iterations != n:
            raise BadInputError(f"--via {','.join(chain[1:-1])} makes {n} hops ({'→'.join(chain)}), not "
                                f"iterations={iterations}: drop iterations or give {iterations - 1} languages")
        if n > MAX_HOPS:
            raise BadInputError(f"--via gives {n - 1} languages: at most {MAX_HOPS - 1} ({MAX_HOPS} hops)")
        for a, b in zip(chain, chain[1:]):
            if a == b:
                raise BadInputError(f"--via: {a}→{b} is no translation: neighbouring languages must differ "
                                    f"(the chain starts and ends in {work})")
    else:
        n = MAX_HOPS if iterations is None else iterations
        if not 1 <= n <= MAX_HOPS:
            raise BadInputError(f"iterations={n}: Stille Post makes 1 to {MAX_HOPS} hops")
        if n == 1:
            raise BadInputError(f"iterations=1: a single hop cannot leave {work} and come back; use 2 to {MAX_HOPS}")
        rng = random.Random(seed)
        chain = _continents_chain(work, n, rng) if translators.llm is not None else \
            _apertium_walk(work, n, translators.apertium_pairs(), rng)
    for a, b in zip(chain, chain[1:]):
        if not translators.can(a, b):
            raise translators.unserved(a, b)
    return chain


def _continents_chain(work: str, n: int, rng: random.Random) -> list[str]:
    chain, home = [work], p.continent_of(work)
    for step in range(n - 1):
        avoid = {p.continent_of(chain[-1])} | ({home} if step == n - 2 else set())
        options = [code for continent, codes in p.CONTINENTS.items() if continent not in avoid
                   for code in codes if code not in chain]
        chain.append(rng.choice(options))
    return chain + [work]


def _apertium_walk(work: str, n: int, pairs: frozenset[tuple[str, str]], rng: random.Random) -> list[str]:
    # back[k]: the languages from which `work` is reached in exactly k hops
    back = [{work}]
    for _ in range(n):
        back.append({s for s, t in pairs if t in back[-1]})
    if work not in back[n]:
        raise BadInputError(f"no chain of exactly {n} Apertium hops leads from {work} back to {work} over the "
                            f"installed pairs: {WHAT_TO_SET}, or give --via")
    chain = [work]
    for step in range(n):
        options = sorted(t for s, t in pairs if s == chain[-1] and t in back[n - step - 1])
        # a language not visited yet where the pairs allow, else not the one just left
        options = [t for t in options if t not in chain] or [t for t in options if t != chain[-2:][0]] or options
        chain.append(rng.choice(options))
    return chain


def stille_post(text: str, work_lang: str, translators: Translators, *, iterations: int | None = None,
                via: list[str] | None = None, seed: int = 0) -> list[Hop]:
    """Stage 2's telephone game: N successive translations, the last back into `work_lang`."""
    if not text.strip():
        raise BadInputError("nothing to intercept: the text is empty")
    chain = stille_post_chain(work_lang, translators, iterations=iterations, via=via, seed=seed)
    hops, current = [], text
    for index, (source, target) in enumerate(zip(chain, chain[1:]), start=1):
        hop = translators.translate(current, source, target, index=index, temperature=p.STILLE_POST_TEMPERATURE,
                                    top_p=p.STILLE_POST_TOP_P, seed=seed)
        hops.append(replace(hop, metadata={**hop.metadata, "chain": chain,
                                           "chosen_by": "via" if via else "seed"}))
        current = hop.text
    return hops


def run_perspective(text: str, perspective: Perspective, work_lang: str, translators: Translators,
                    *, seed: int = 0) -> Hop:
    """One LLM rewrite of `text` through `perspective`, in the working language (iteration 1)."""
    work = _language(work_lang)
    llm = translators.llm
    if llm is None:
        raise BadInputError(f"perspective {perspective.name!r} needs an LLM: {WHAT_TO_SET} "
                            f"(offline, only {STILLE_POST} runs)")
    if not text.strip():
        raise BadInputError("nothing to intercept: the text is empty")
    start = time.perf_counter()
    reply, model, parameters = llm.complete(p.perspective_system(perspective, work), text,
                                            temperature=p.PERSPECTIVE_TEMPERATURE, top_p=p.PERSPECTIVE_TOP_P,
                                            seed=seed)
    usage = parameters.pop("usage", None)
    return Hop(1, work, work, reply, llm.name, model,
               _clean({"perspective": perspective.name, "prompt_version": p.PROMPT_VERSION, **parameters}),
               round(time.perf_counter() - start, 4),
               {"title": perspective.title, **({"usage": usage} if usage else {})})


def interception_names() -> list[str]:
    return [STILLE_POST, *PERSPECTIVES]


def intercept(text: str, name: str, work_lang: str, translators: Translators, *, iterations: int | None = None,
              via: list[str] | None = None, seed: int = 0) -> list[Hop]:
    """Stage 2 by name: `stille-post` or one of PERSPECTIVES (one iteration; `iterations` unused)."""
    key = (name or "").strip().lower()
    if key == STILLE_POST:
        return stille_post(text, work_lang, translators, iterations=iterations, via=via, seed=seed)
    if key not in PERSPECTIVES:
        raise BadInputError(f"unknown interception {name!r}: use one of {', '.join(interception_names())}")
    if via:
        raise BadInputError(f"--via applies to {STILLE_POST} only, not to the perspective {key!r}")
    return [run_perspective(text, PERSPECTIVES[key], work_lang, translators, seed=seed)]
