"""Credentials out of anything logged or recorded: URLs and free text that may hold them."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/@]*)@")
_SECRET_PARAMS = ("password", "passwd", "pass", "token", "secret", "key", "auth", "apikey", "api_key")


def scrub(text: str) -> str:
    """`text` without any password or token written into a URL (`scheme://user:***@host`)."""
    def hide(match: re.Match) -> str:
        user, colon, _ = match.group("userinfo").partition(":")
        # `https://token@host`: a lone user name may itself be the secret
        return f"{match.group('scheme')}{user}:***@" if colon else f"{match.group('scheme')}***@"
    return _USERINFO.sub(hide, text)


def redact_url(url: str) -> str:
    """`url` fit for a log line or metadata: password, token-like user names and secret
    query parameters as `***`."""
    parts = urlsplit(scrub(url))
    if not parts.query:
        return urlunsplit(parts)
    query = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="*:/"), parts.fragment))
