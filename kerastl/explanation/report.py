"""report.md of an explanation, and the sentences read off probe.csv (the comparison's "Why"
section uses the same ones): every number in them comes from the probe's rows, none is written
by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from kerastl import plots
from kerastl.explanation.probe import FINE_TUNED, IMAGENET, PIXELS, RANDOM, WEIGHT_LABELS, ProbeRow, read_csv
from kerastl.text import percent, points

REPORT = "report.md"


def _line(rows: Sequence[ProbeRow], weights: str) -> list[ProbeRow]:
    return sorted((r for r in rows if r.weights == weights), key=lambda r: r.depth)


def best_block(rows: Sequence[ProbeRow], weights: str = IMAGENET) -> ProbeRow:
    """The block whose features a linear probe reads best (the shallowest of equals)."""
    return max(_line(rows, weights), key=lambda r: (r.test_accuracy, -r.depth))


def blocks_after(rows: Sequence[ProbeRow], block: ProbeRow) -> int:
    """How many blocks come after `block`: the `--unfreeze` value that retrains them."""
    return sum(1 for r in _line(rows, IMAGENET) if r.depth > block.depth)


def sampling_noise(a: ProbeRow, b: ProbeRow) -> float:
    """Twice the test-set sampling error of the difference of two accuracies (as the comparison's
    report judges a difference): below it, the two are level."""
    variance = a.test_accuracy * (1 - a.test_accuracy) + b.test_accuracy * (1 - b.test_accuracy)
    return 2 * math.sqrt(variance / a.test_images)


def advised_unfreeze(rows: Sequence[ProbeRow]) -> int:
    """The blocks after the best one, if the top has really lost accuracy to them (beyond the
    sampling noise); 0 if the top is level with the best: nothing needs retraining."""
    best, top = best_block(rows), _line(rows, IMAGENET)[-1]
    return blocks_after(rows, best) if best.test_accuracy - top.test_accuracy > sampling_noise(best, top) else 0


def gaps(rows: Sequence[ProbeRow]) -> list[tuple[ProbeRow, ProbeRow]]:
    """(ImageNet row, random row) at every depth both were probed."""
    random = {r.depth: r for r in _line(rows, RANDOM)}
    return [(r, random[r.depth]) for r in _line(rows, IMAGENET) if r.depth in random]


def _blocks(n: int) -> str:
    return f"{n} block" if n == 1 else f"{n} blocks"


def findings(rows: Sequence[ProbeRow], dataset: str) -> list[str]:
    """Plain sentences from the probe's rows: the best block, the gap to random, what it means for
    `--unfreeze`, and (where present) the fine-tuned weights and the raw-pixel baseline."""
    imagenet = _line(rows, IMAGENET)
    best, top, stem = best_block(rows), imagenet[-1], imagenet[0]
    n, after = best.test_images, advised_unfreeze(rows)
    out = [
        f"ImageNet features serve {dataset} best after {best.block} (block {best.depth} of {len(imagenet)}, stem first): a linear probe "
        f"on its {best.width} pooled features scores {percent(best.test_accuracy, 1)} on {n:,} test images "
        f"({best.train_images:,} training images), against {percent(stem.test_accuracy, 1)} after the stem and {percent(top.test_accuracy, 1)} at the top."
    ]
    pairs = gaps(rows)
    if pairs:
        widest = max(pairs, key=lambda p: p[0].test_accuracy - p[1].test_accuracy)
        best_random = best_block(rows, RANDOM)
        out.append(
            f"Random weights (batch norm re-estimated) do best after {best_random.block} ({percent(best_random.test_accuracy, 1)}) and fade "
            f"with depth to {percent(pairs[-1][1].test_accuracy, 1)} at the top; ImageNet minus random is "
            f"{points(pairs[0][0].test_accuracy - pairs[0][1].test_accuracy)} after the stem, "
            f"{points(widest[0].test_accuracy - widest[1].test_accuracy)} at its widest (after {widest[0].block}) and "
            f"{points(pairs[-1][0].test_accuracy - pairs[-1][1].test_accuracy)} at the top."
        )
    if after:
        out.append(
            f"The {_blocks(after)} after {best.block} specialise to ImageNet and lose {points(top.test_accuracy - best.test_accuracy)[1:]} "
            f"of linear accuracy on {dataset}: `--mode partial --unfreeze {after}` retrains exactly them and keeps the "
            f"{len(imagenet) - after} blocks up to {best.block}, which transfer, frozen."
        )
    else:
        out.append(
            f"ImageNet features hold up to the top ({percent(top.test_accuracy, 1)} against {percent(best.test_accuracy, 1)} after {best.block}, "
            f"level within the {100 * sampling_noise(best, top):.1f} pp sampling noise of {n:,} test images): the whole frozen "
            f"backbone transfers to {dataset}, so `--mode feature` (or `--mode partial --unfreeze 1`, the top block only) "
            "is the natural start."
        )
    tuned = _line(rows, FINE_TUNED)
    if tuned:
        gain = max(zip(imagenet, tuned), key=lambda p: p[1].test_accuracy - p[0].test_accuracy)
        out.append(
            f"The run's fine-tuned weights score {percent(tuned[-1].test_accuracy, 1)} at the top ({points(tuned[-1].test_accuracy - top.test_accuracy)} "
            f"over ImageNet's); fine-tuning changed the features most after {gain[0].block} "
            f"({percent(gain[0].test_accuracy, 1)} -> {percent(gain[1].test_accuracy, 1)})."
        )
    pixels = next((r for r in rows if r.weights == PIXELS), None)
    if pixels:
        out.append(f"For scale: the same probe on the raw pixels scores {percent(pixels.test_accuracy, 1)}.")
    return out


def check_sentence(rows: Sequence[ProbeRow], check: dict[str, Any]) -> str:
    """What the short partial run showed, against the frozen features at the best block and at the top."""
    best, top = best_block(rows), _line(rows, IMAGENET)[-1]
    text = (f"Check: `{check['command']}` reached {percent(check['test_accuracy'], 1)} on the same {check['test_images']:,} test images "
            f"in {check['seconds']:.0f} s ({check['train_images']:,} training images, {check['steps']:,} optimiser steps), against "
            f"{percent(best.test_accuracy, 1)} for the linear probe on the frozen {best.block} features and {percent(top.test_accuracy, 1)} on the frozen top.")
    lost = best.test_accuracy - top.test_accuracy
    if lost > 0:
        share = (check["test_accuracy"] - top.test_accuracy) / lost
        text += (f" Retraining the {_blocks(check['unfreeze'])} won back {100 * share:.0f} % of the {points(lost)[1:]} the frozen "
                 f"top had lost" + (f", and more: it beat the probe at {best.block}." if share > 1 else
                                    f"; the frozen {best.block} features read linearly still did better." if share < 1 else "."))
    return text


def probe_table(rows: Sequence[ProbeRow]) -> list[str]:
    """Markdown: one row per block, ImageNet, random, the gap and the fine-tuned weights."""
    random = {r.depth: r for r in _line(rows, RANDOM)}
    tuned = {r.depth: r for r in _line(rows, FINE_TUNED)}
    best = best_block(rows)
    header = "| block | depth | features | ImageNet | random | ImageNet - random |" + (" fine-tuned |" if tuned else "")
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for r in _line(rows, IMAGENET):
        mark = "**" if r.depth == best.depth else ""
        cells = [r.block, str(r.depth), str(r.width), f"{mark}{percent(r.test_accuracy, 1)}{mark}"]
        cells += [percent(random[r.depth].test_accuracy, 1), points(r.test_accuracy - random[r.depth].test_accuracy)] if r.depth in random else ["—", "—"]
        cells += [percent(tuned[r.depth].test_accuracy, 1)] if tuned else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def why_section(probe_csv: Path, figure: str, dataset: str = "MNIST") -> list[str]:
    """The comparison's "Why" section: the probe figure and two sentences from probe.csv."""
    rows = read_csv(probe_csv)
    said = findings(rows, dataset)
    return ["## Why: what each block of the ImageNet backbone knows about digits", "", *[f"- {s}" for s in said[:2]], "",
            f"![Linear probe after every block]({figure})", ""]


def build(folder: Path, rows: Sequence[ProbeRow], facts: dict[str, Any], figures: dict[str, str]) -> str:
    """report.md's text, from the probe's rows and the facts of the job (command, data, check run, timings)."""
    dataset = facts["dataset_label"]
    lines = [
        f"# Why transfer works, measured: {facts['backbone_label']} on {dataset}",
        "",
        f"Command: `{facts['command']}`  ",
        f"Budget **{facts['budget']}**: {facts['train_images']:,} training images ({facts['per_class']} per class, seed {facts['seed']}) "
        f"and the first {facts['test_images']:,} test images, at {facts['img_size']} px; Keras backend {facts['backend']}; "
        f"{facts['seconds']:.0f} s in all.",
        "",
    ]
    if facts.get("run"):
        lines += [f"Explains the run `{facts['run']}` ({facts['run_mode']}, test accuracy {percent(facts['run_accuracy'], 1)} "
                  f"on {facts['run_test_images']:,} images): its backbone, data and input size; its fine-tuned weights are "
                  "the third set of weights probed." if facts["run_mode"] != "feature" else
                  f"Explains the run `{facts['run']}` (feature extraction: its backbone kept ImageNet's weights, so it adds "
                  "no third set of weights; its classifier is the one whose saliency is drawn).", ""]
    lines += ["## What the probe says", "", *[f"- {s}" for s in findings(rows, dataset)]]
    check = facts.get("check")
    if check:
        lines += [f"- {check_sentence(rows, check)}" + (f" The run explained scored {percent(facts['run_accuracy'], 1)}." if facts.get("run") else "")]
    lines += ["", "## A linear probe after every block", "",
              "Each block's output is global-average-pooled, standardised and read by a multinomial logistic regression "
              "(scikit-learn) trained on the training images above. Random weights had their batch-norm statistics "
              "re-estimated on those images first (momentum 0, one batch in training mode): with the initial statistics "
              "a random backbone's features collapse and score chance. Pooling hides a shallow block's spatial detail, so "
              "the stem's low score is the pooling's as much as the features'. `depth` counts the blocks an image has "
              "passed, the blocks `--unfreeze N` counts from the top.", "", *probe_table(rows), ""]
    captions = {
        "probe": "Linear-probe accuracy after every block, per set of weights.",
        "filters": "The first convolution's filters, ImageNet's next to random ones, as RGB and as a grey image sees them.",
        "feature_maps": "What the backbone sees: one test image's most active channels at four depths.",
        "embedding": "Test images mapped to 2-D, coloured by class; each panel titled with its linear-probe accuracy.",
        "saliency": "Occlusion sensitivity: where covering the image lowers the model's confidence (log-odds) in its prediction.",
    }
    lines += plots.markdown_figures(captions, figures)
    lines += ["## Timings", "", "| step | seconds |", "| --- | --- |"]
    lines += [f"| {step} | {seconds:.1f} |" for step, seconds in facts["timings"].items()]
    lines += ["", f"Every number above is read from `probe.csv` (the probe) and the check run's `metrics.json`; "
              f"{WEIGHT_LABELS[IMAGENET]}, {WEIGHT_LABELS[RANDOM]}" + (f", {WEIGHT_LABELS[FINE_TUNED]}" if _line(rows, FINE_TUNED) else "")
              + ".", ""]
    return "\n".join(lines)
