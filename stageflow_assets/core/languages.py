"""Language codes: ISO 639-1 in partition keys, ISO 639-2 in containers and Apertium modes."""

from __future__ import annotations

import functools

import pycountry


@functools.lru_cache(maxsize=256)
def _lookup(code: str):
    code = code.lower()
    lang = pycountry.languages.get(alpha_2=code) if len(code) == 2 else None
    return lang or pycountry.languages.get(alpha_3=code)


def iso639_2(code: str) -> str:
    """Three-letter code for container tags (bibliographic form where one exists, as MKV wants)."""
    lang = _lookup(code)
    if lang is None:
        return "und"
    return getattr(lang, "bibliographic", None) or lang.alpha_3


def iso639_3(code: str) -> str:
    lang = _lookup(code)
    return lang.alpha_3 if lang is not None else code.lower()


def language_name(code: str) -> str:
    lang = _lookup(code)
    return lang.name if lang is not None else code


def is_known(code: str) -> bool:
    return _lookup(code) is not None
