"""How kerastl writes numbers in its logs, reports, pages and model cards."""

from __future__ import annotations


def percent(value: float | None, digits: int = 2) -> str:
    """0.9933 -> `99.33 %`; a missing value -> `—`."""
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def points(value: float, digits: int = 1) -> str:
    """A difference of two shares in percentage points: 0.012 -> `+1.2 pp`."""
    return f"{100 * value:+.{digits}f} pp"
