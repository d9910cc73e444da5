"""Where this site may send a browser back to: a path of its own, never another host."""

from __future__ import annotations

from urllib.parse import urlsplit


def is_local_path(url: str) -> bool:
    """Whether ``url`` is a path of this site: one "/" first, then no scheme or host, no backslash
    and no control character. Browsers read "/\\host" as "//host" and drop tabs and newlines
    ("/\\t/host" is "//host" too); urlsplit drops them as well, so they are refused before it
    reads the rest."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url or not url.isprintable():
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc
