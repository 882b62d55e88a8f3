"""Copies: pictures whose decoded pixels are identical (`duplicate`), and copies that were resized,
recompressed, brightened or shifted a little (`near_duplicate`).

Exact copies share the hash of their decoded pixels (kerastl.inspection.pictures), so a PNG and a
lossless re-save of it match. Near copies are found in two steps, chosen by measurement on a planted
Fashion-MNIST folder (docs/inspect.md):

1. candidates: each picture's `CANDIDATES` nearest pictures by the cosine similarity of the pretrained
   backbone's features (cheap, and robust to size, format and brightness, but not specific: two plain
   black T-shirts are as close as a T-shirt and its re-encoding);
2. the check: the correlation of the two 32x32 grey pictures at the best of the shifts up to
   `MAX_SHIFT` pixels (so brightness and small shifts do not count), then Lowe's ratio test (2004):
   a pair is a near copy when each is the other's best match, they correlate at least
   `MIN_CORRELATION`, and the match is at least 1 / `MAX_RATIO` times closer (1 - correlation) than
   the next-closest candidate of either picture. Look-alikes come in crowds; a copy stands alone.

A perceptual hash (DCT pHash) alone could not tell the planted re-encodings from look-alikes: the
1-2 pixel shifts moved them 14-24 bits, while 4,000 other pairs were within 14 bits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

CANDIDATES = 10
MAX_SHIFT = 3  # pixels of the 32x32 grey picture
MIN_CORRELATION = 0.95
MAX_RATIO = 0.5
BLOCK = 1024  # rows of the similarity matrix made at once: bounds memory on all of MNIST
PAIR_CHUNK = 50_000


@dataclass(frozen=True)
class NearPair:
    first: int
    second: int
    correlation: float  # of the grey pictures at the best shift
    ratio: float  # (1 - correlation) over that of the next-closest candidate (the larger of the two sides)


def exact_groups(pixel_hashes: np.ndarray) -> list[list[int]]:
    """Groups of two or more pictures with the same decoded pixels, in index order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, digest in enumerate(pixel_hashes):
        groups[digest].append(i)
    return [members for members in groups.values() if len(members) > 1]


def candidate_pairs(features: np.ndarray, k: int = CANDIDATES) -> np.ndarray:
    """int [m, 2], i < j, unique: every picture with its `k` nearest by feature cosine similarity."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    k = min(k, len(unit) - 1)
    pairs = []
    for start in range(0, len(unit), BLOCK):
        similarity = unit[start:start + BLOCK] @ unit.T
        rows = np.arange(start, start + len(similarity))
        similarity[rows - start, rows] = -np.inf
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        pairs.append(np.stack([np.repeat(rows, k), nearest.ravel()], 1))
    pairs = np.sort(np.concatenate(pairs), axis=1) if pairs else np.zeros((0, 2), int)
    return np.unique(pairs, axis=0)


def shifted_correlation(grey: np.ndarray, pairs: np.ndarray, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """float [m]: the correlation of each pair's grey pictures at the best shift of up to
    `max_shift` pixels (each picture's overlapping part centred and scaled to unit length)."""
    side = grey.shape[1]
    best = np.full(len(pairs), -1.0, "float32")
    pixels = grey.astype("float32")
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            first = _unit(pixels[:, max(dy, 0):side + min(dy, 0), max(dx, 0):side + min(dx, 0)])
            second = _unit(pixels[:, max(-dy, 0):side + min(-dy, 0), max(-dx, 0):side + min(-dx, 0)])
            for start in range(0, len(pairs), PAIR_CHUNK):
                chunk = pairs[start:start + PAIR_CHUNK]
                np.maximum(best[start:start + len(chunk)],
                           np.einsum("ij,ij->i", first[chunk[:, 0]], second[chunk[:, 1]]),
                           out=best[start:start + len(chunk)])
    return best


def _unit(crops: np.ndarray) -> np.ndarray:
    flat = crops.reshape(len(crops), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)


def near_pairs(grey: np.ndarray, features: np.ndarray) -> list[NearPair]:
    """Near copies among pictures with distinct pixels (pass one picture of each exact group)."""
    if len(grey) < 3:
        return []
    pairs = candidate_pairs(features)
    correlation = shifted_correlation(grey, pairs)
    best: dict[int, list[tuple[float, int]]] = defaultdict(list)  # picture -> its two best (correlation, other)
    for (i, j), c in zip(pairs, correlation):
        for a, b in ((i, j), (j, i)):
            best[a] = sorted(best[a] + [(float(c), int(b))], reverse=True)[:2]

    def ratio(a: int) -> float:
        (c1, _), (c2, _) = best[a] if len(best[a]) == 2 else (best[a][0], (-1.0, -1))
        return (1 - c1) / max(1 - c2, 1e-9)

    found = []
    for a, ranked in best.items():
        c, b = ranked[0]
        if a < b and best[b][0][1] == a and c >= MIN_CORRELATION:
            worst = max(ratio(a), ratio(b))
            if worst <= MAX_RATIO:
                found.append(NearPair(a, b, c, worst))
    return sorted(found, key=lambda p: p.ratio)
