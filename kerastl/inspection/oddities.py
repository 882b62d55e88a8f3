"""What else a person wants flagged before training: files that cannot be used, pictures of an odd
size or shape, grey pictures among colour ones (or colour among grey), and classes with far fewer
pictures than the others."""

from __future__ import annotations

import numpy as np

from kerastl.inspection.findings import Finding
from kerastl.inspection.pictures import Pictures

MIN_SIDE = 16  # pixels: smaller pictures carry little a model can use
SIZE_FACTOR = 4  # a side this many times smaller or larger than the median is odd
MAX_ASPECT = 3.0  # longer side over shorter side
MINORITY = 0.1  # grey among colour (or colour among grey) below this share is flagged
SMALL_CLASS = 0.5  # a class with fewer than this share of the median class's training pictures


def oddities(pictures: Pictures) -> list[Finding]:
    return [*_broken(pictures), *_odd_sizes(pictures), *_minority_colour(pictures), *_small_classes(pictures)]


def _broken(pictures: Pictures) -> list[Finding]:
    return [Finding("broken", name, "", 1.0, f"cannot be used: {why}; fit skips it") for name, why in pictures.broken]


def _odd_sizes(pictures: Pictures) -> list[Finding]:
    if not len(pictures):
        return []
    heights, widths = pictures.sizes[:, 0], pictures.sizes[:, 1]
    median = float(np.median(np.maximum(heights, widths)))
    found = []
    for i, (h, w) in enumerate(pictures.sizes):
        aspect = max(h, w) / max(min(h, w), 1)
        why = (f"{w}x{h} pixels, smaller than {MIN_SIDE} px" if min(h, w) < MIN_SIDE else
               f"{w}x{h} pixels, far from the usual {median:.0f} px side" if not median / SIZE_FACTOR <= max(h, w) <= median * SIZE_FACTOR else
               f"{w}x{h} pixels, {aspect:.1f}:1; it is squeezed to a square for training" if aspect > MAX_ASPECT else None)
        if why:
            found.append(Finding("odd_size", str(pictures.names[i]), "", round(float(aspect), 2), why))
    return found


def _minority_colour(pictures: Pictures) -> list[Finding]:
    if not len(pictures):
        return []
    share = float(pictures.colour.mean())
    if 0 < share < MINORITY:
        odd, what = pictures.colour, "a colour picture among grey ones; fit trains in colour for its sake"
    elif 0 < 1 - share < MINORITY:
        odd, what = ~pictures.colour, "a grey picture among colour ones: a scan, a filter or another source?"
    else:
        return []
    return [Finding("grey" if what.startswith("a grey") else "colour", str(name), "", 1.0, what)
            for name in pictures.names[odd]]


def _small_classes(pictures: Pictures) -> list[Finding]:
    train = pictures.labels[pictures.splits == "train"]
    counts = np.bincount(train, minlength=len(pictures.class_names))
    median = float(np.median(counts))
    return [Finding("small_class", name, "", round(float(count / median), 2),
                    f"{count} training pictures against a median of {median:.0f} a class: it is predicted rarely and "
                    "scored on few pictures; add pictures of it")
            for name, count in zip(pictures.class_names, counts) if count < SMALL_CLASS * median]
