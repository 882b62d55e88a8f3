"""The `duplicate` and `near_duplicate` findings of a dataset, and how many validation or test
pictures have a copy in train (what `fit` reports before it trains)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerastl.inspection import duplicates
from kerastl.inspection.findings import Finding
from kerastl.inspection.pictures import Pictures

HELD_OUT = ("val", "test")


@dataclass(frozen=True)
class Copies:
    findings: list[Finding]
    leaked: list[str]  # validation/test pictures with an exact or near copy in train

    @property
    def leak_count(self) -> int:
        return len(self.leaked)


def find_copies(pictures: Pictures, features: np.ndarray | None = None) -> Copies:
    """Exact and near copies. Without `features` (the backbone's), near copies are looked for among
    each picture's nearest by its blurred 8x8 grey pixels: `fit`'s quick check, which finds the
    plainer copies only (measured in docs/inspect.md)."""
    groups = duplicates.exact_groups(pictures.pixel_hashes)
    findings, leaked = [], set()
    for members in groups:
        anchor = next((m for m in members if pictures.splits[m] == "train"), members[0])
        for m in members:
            if m != anchor:
                findings.append(_row("duplicate", pictures, m, anchor, 1.0, "the same pixels"))
                _note_leak(pictures, m, anchor, leaked)
    in_group = {m: members[0] for members in groups for m in members}
    representatives = np.array([i for i in range(len(pictures)) if in_group.get(i, i) == i], dtype=int)
    if len(representatives) > 2:
        signal = features[representatives] if features is not None else _blurred_pixels(pictures.grey[representatives])
        for pair in duplicates.near_pairs(pictures.grey[representatives], signal):
            first, second = int(representatives[pair.first]), int(representatives[pair.second])
            if pictures.splits[first] == "train" and pictures.splits[second] != "train":
                first, second = second, first  # report the held-out picture, its match in train
            detail = (f"correlation {pair.correlation:.3f} at the best shift; {1 / max(pair.ratio, 1e-9):.1f}x closer "
                      "than any other picture")
            findings.append(_row("near_duplicate", pictures, first, second, round(pair.correlation, 4), detail))
            for a, b in ((first, second), (second, first)):
                for x in _members(groups, a):
                    for y in _members(groups, b):
                        _note_leak(pictures, x, y, leaked)
    return Copies(findings, sorted(leaked))


def _members(groups: list[list[int]], index: int) -> list[int]:
    return next((members for members in groups if index in members), [index])


def _note_leak(pictures: Pictures, held_out: int, train: int, leaked: set[str]) -> None:
    if pictures.splits[held_out] in HELD_OUT and pictures.splits[train] == "train":
        leaked.add(str(pictures.names[held_out]))
    elif pictures.splits[train] in HELD_OUT and pictures.splits[held_out] == "train":
        leaked.add(str(pictures.names[train]))


def _row(kind: str, pictures: Pictures, first: int, second: int, score: float, what: str) -> Finding:
    a, b = str(pictures.splits[first]), str(pictures.splits[second])
    where = (f"a {a} picture with a copy in train: it inflates the {a} score" if a in HELD_OUT and b == "train" else
             "within the folder: fit's random split can put one in test and the other in train"
             if not pictures.given_splits else f"within {a}: one picture counted twice" if a == b else f"across {a} and {b}")
    return Finding(kind, str(pictures.names[first]), str(pictures.names[second]), score, f"{what}; {where}")


def _blurred_pixels(grey: np.ndarray) -> np.ndarray:
    """float [n, 64]: the 32x32 grey pictures averaged over 4x4 blocks, centred: a cheap stand-in for
    features when looking for candidates."""
    small = grey.astype("float32").reshape(len(grey), 8, 4, 8, 4).mean(axis=(2, 4)).reshape(len(grey), -1)
    return small - small.mean(axis=1, keepdims=True)
