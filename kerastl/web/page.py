"""A page of kerastl's local servers: its HTML with the shared style and script inlined.

A page's HTML names what it takes from kerastl/web/static/ with markers on lines of their own:
`<!-- kerastl:head.html -->` (the document's start, up to its <title>: the head every page shares,
which takes style.css), `<!-- kerastl:style.css -->` and `<!-- kerastl:pictures.js -->`, replaced
by that HTML, and by `<style>` and `<script>` elements holding those files. One file each for every
page (one look, one picture handling), and still one request per page, with nothing to fetch from
elsewhere.
"""

from __future__ import annotations

import re
from importlib import resources

STATIC = resources.files("kerastl.web") / "static"
MARKER = re.compile(r"<!-- kerastl:([\w.-]+\.(css|js|html)) -->")


def assemble(package: str, name: str) -> bytes:
    """The page `name` of `package` (e.g. "kerastl.demo", "page.html"), its markers replaced."""
    html = (resources.files(package) / name).read_text(encoding="utf-8")
    return MARKER.sub(inlined, html).encode("utf-8")


def inlined(match: re.Match) -> str:
    """A marker's file: HTML as it is (its own markers replaced), CSS and JavaScript in their element."""
    text = (STATIC / match.group(1)).read_text(encoding="utf-8")
    if match.group(2) == "html":
        return MARKER.sub(inlined, text).rstrip("\n")
    tag = "style" if match.group(2) == "css" else "script"
    return f"<{tag}>\n{text}</{tag}>"
