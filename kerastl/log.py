"""How kerastl reports progress: a long-running function takes `log`, a function of one line
(`print` by default; a list's `append` in tests, a page's progress in a server)."""

from typing import Callable

Log = Callable[[str], None]


def quiet(line: str) -> None:
    """A `log` that drops every line."""
