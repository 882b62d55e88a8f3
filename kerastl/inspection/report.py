"""report.md and its figures: the class balance, and per kind of finding a contact sheet of the
worst cases (a copy beside its match; a picture with its folder and the suggested class)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from kerastl.files import atomic_write_text
from kerastl.inspection.findings import FINDINGS_CSV, KINDS, write_csv
from kerastl.inspection.pictures import Pictures
from kerastl.plots import pyplot, save_figure
from kerastl.text import percent

BALANCE_PNG = "class_balance.png"
SHEET_CASES = 16  # pictures (or pairs) a contact sheet shows
TABLE_ROWS = 5
PAIRED = ("duplicate", "near_duplicate")


def sheet_name(kind: str) -> str:
    return f"{kind}.png"


def write_folder(folder: Path, result, pictures: Pictures, start: float) -> None:
    """findings.csv, report.md and the figures, into a hidden folder renamed to `folder` at the end:
    a failure or Ctrl-C leaves nothing half-written. `start`: when the inspection began."""
    work = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir()
    try:
        write_csv(work / FINDINGS_CSV, result.findings)
        result.seconds = time.perf_counter() - start
        write(work, result, pictures)
        if folder.exists():
            folder.rmdir()  # an empty folder the user named
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write(folder: Path, result, pictures: Pictures) -> None:
    class_balance(folder / BALANCE_PNG, result.class_names, result.counts, result.dataset)
    index = {str(name): i for i, name in enumerate(pictures.names)}
    for kind in KINDS:
        rows = result.of_kind(kind)
        if rows and kind != "small_class":
            contact_sheet(folder / sheet_name(kind), kind, rows[:SHEET_CASES], pictures, index, len(rows))
    atomic_write_text(folder / "report.md", markdown(result))


def class_balance(path: Path, class_names: list[str], counts: dict[str, list[int]], dataset: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(class_names) + 2), 3.6))
    x = np.arange(len(class_names))
    width = 0.8 / len(counts)
    for k, (split, values) in enumerate(counts.items()):
        ax.bar(x + (k - (len(counts) - 1) / 2) * width, values, width, label=split)
    ax.set_xticks(x, class_names, rotation=30 if len(class_names) > 6 else 0, ha="right" if len(class_names) > 6 else "center")
    ax.set_xlabel("class")
    ax.set_ylabel("pictures")
    ax.set_title(f"{Path(dataset).name}: pictures per class and split")
    ax.legend(loc="lower right", framealpha=0.9)
    save_figure(fig, path)


def contact_sheet(path: Path, kind: str, rows, pictures: Pictures, index: dict[str, int], total: int) -> None:
    """Pairs side by side for copies; single pictures titled with their folder (and the suggested class)."""
    plt = pyplot()
    paired = kind in PAIRED
    columns = 8
    cells = 2 * len(rows) if paired else len(rows)
    lines = 3
    fig, axes = plt.subplots(max(1, -(-cells // columns)), columns, squeeze=False,
                             figsize=(1.5 * columns, 1.2 + (1.55 + 0.13 * lines) * max(1, -(-cells // columns))))
    for ax in axes.flat:
        ax.axis("off")
    cell = iter(axes.flat)
    for row in rows:
        shown = [(row.file, _caption(kind, row, first=True))] + ([(row.other, _caption(kind, row, first=False))] if paired else [])
        for name, caption in shown:
            ax = next(cell)
            if name in index:
                image = pictures.thumbs[index[name]]
                ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255)
            else:
                ax.text(0.5, 0.5, "cannot\nbe read", ha="center", va="center", fontsize=8)
            ax.set_title(caption, fontsize=7, color="firebrick" if caption.startswith(("→", "in ")) else "black")
    what = {"duplicate": "each copy beside its match", "near_duplicate": "each near copy beside its match",
            "label": "each picture with its folder and the class a model suggests"}.get(kind, "each picture with why")
    fig.suptitle(f"{Path(pictures.dataset).name}: {kind.replace('_', ' ')} findings, the {len(rows)} worst of {total} "
                 f"({what})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _caption(kind: str, row, first: bool) -> str:
    name = row.file if first else row.other
    if kind == "label":
        folder = row.detail.split(";")[0].removeprefix("in ")
        return f"{_short(name)}\nin {folder} ({1 - row.score:.0%})\n→ {row.other}"
    if kind in PAIRED:
        return f"{_short(name)}\n{'copy' if first else 'match'}" + (f" {row.score:.3f}" if first and kind != "duplicate" else "")
    return f"{_short(name)}\n{row.detail[:24]}"


def markdown(result) -> str:
    n = sum(sum(v) for v in result.counts.values())
    lines = [
        f"# Data health: {Path(result.dataset).name}",
        "",
        f"{n:,} pictures in {len(result.class_names)} classes ({', '.join(result.counts)}), checked in "
        f"{result.seconds:.0f} s; the dataset was only read. Every finding is a row of [{FINDINGS_CSV}]({FINDINGS_CSV}).",
        "",
        f"**{result.leak_count} validation/test pictures have a copy in train**"
        + (" (exact or near): a model is scored partly on pictures it trained on." if result.leak_count else "."),
        "",
        "## Counts",
        "",
        "| split | " + " | ".join(result.class_names) + " | all |",
        "| --- |" + " ---: |" * (len(result.class_names) + 1),
        *[f"| {split} | " + " | ".join(f"{v:,}" for v in values) + f" | {sum(values):,} |" for split, values in result.counts.items()],
        "",
        f"![pictures per class and split]({BALANCE_PNG})",
        "",
        "## The floor",
        "",
        "What a linear model reaches on the same pictures, out of fold (each picture predicted by a logistic "
        "regression fitted on the other folds, over all splits): the accuracy any trained run should beat.",
        "",
        "| linear model on | accuracy |",
        "| --- | ---: |",
        f"| raw pixels | {percent(result.floor['pixels'], 1)} |",
        f"| frozen EfficientNet-Lite0 features (ImageNet weights) | {percent(result.floor['features'], 1)} |",
        "",
        "## Findings",
        "",
    ]
    for kind, (meaning, action) in KINDS.items():
        rows = result.of_kind(kind)
        if not rows:
            continue
        lines += [f"### {kind} ({len(rows):,})", "", f"What it means: {meaning}. What to do: {action}.", ""]
        if kind != "small_class":
            lines += [f"![{kind} findings]({sheet_name(kind)})", ""]
        lines += ["| file | other | score | detail |", "| --- | --- | ---: | --- |"]
        lines += [f"| {r.file} | {r.other} | {r.score:g} | {r.detail} |" for r in rows[:TABLE_ROWS]]
        if len(rows) > TABLE_ROWS:
            lines.append(f"| … {len(rows) - TABLE_ROWS:,} more in {FINDINGS_CSV} | | | |")
        lines.append("")
    if not result.findings:
        lines += ["Nothing found.", ""]
    lines += [
        "## How it looks",
        "",
        "Copies: the hash of the decoded pixels (exact); near copies: each picture's nearest pictures by the "
        "backbone's features, kept where the grey pictures correlate at the best small shift and the match stands "
        "out from every other candidate. Labels: confident learning (Northcutt et al. 2021) on the out-of-fold "
        "probabilities of the features head. See docs/inspect.md.",
        "",
    ]
    return "\n".join(lines)
