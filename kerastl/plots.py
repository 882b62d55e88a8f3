"""Figures: a run's learning curves and confusion matrix, and the comparison's figures.

matplotlib is imported inside the functions (with the non-interactive Agg backend) so that
importing kerastl, and every `--help`, stays fast. One idea per figure: titled, axes labelled with
units, legend inside the frame, readable at 100 %.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kerastl import runs
from kerastl.evaluation import confusion_matrix
from kerastl.files import atomic_path
from kerastl.history import TARGET_ACCURACY
from kerastl.modes import BACKBONE_MODES


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend and kerastl's figure style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def save_figure(fig, path: Path) -> None:
    """Write `fig` as a PNG (atomically) and close it."""
    with atomic_path(Path(path), suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)


# One run ----------------------------------------------------------------------------------------


def markdown_figures(captions: dict[str, str], drawn: dict[str, str]) -> list[str]:
    """A report's "## Figures" section: each drawn figure (key -> file name) under its caption."""
    lines = ["## Figures", ""]
    for key, name in drawn.items():
        lines += [captions[key], "", f"![{captions[key]}]({name})", ""]
    return lines


def run_curves(rows: list[dict[str, Any]], path: Path, title: str, loss_label: str = "loss (cross-entropy)") -> None:
    """Loss and accuracy per epoch, train and validation, with the stages marked above the frames."""
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in rows]
    for ax, key, label in ((ax_loss, "loss", loss_label), (ax_acc, "accuracy", "accuracy (%)")):
        scale = 100 if key == "accuracy" else 1
        for prefix, name, style in (("", "train", "-o"), ("val_", "validation", "-s")):
            points = [(e, r[prefix + key] * scale) for e, r in zip(epochs, rows) if r[prefix + key] is not None]
            if points:
                ax.plot(*zip(*points), style, markersize=3, label=name)
        ax.set_xlabel("epoch (all stages)")
        ax.set_ylabel(label)
        _mark_stages(ax, rows)
        ax.legend(loc="best")
        if len(epochs) < 15:
            ax.set_xticks(epochs)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _mark_stages(ax, rows: list[dict[str, Any]]) -> None:
    """A dotted line where a new stage starts; each stage's name centred over its epochs, just above the frame."""
    spans: list[list] = []  # [stage, first epoch, last epoch]
    for r in rows:
        if spans and spans[-1][0] == r["stage"]:
            spans[-1][2] = r["epoch"]
        else:
            spans.append([r["stage"], r["epoch"], r["epoch"]])
    if len(spans) < 2:
        return
    for stage, first, last in spans:
        if first != spans[0][1]:
            ax.axvline(first - 0.5, color="grey", linestyle=":", linewidth=1)
        ax.text((first + last) / 2, 1.01, f"stage {stage}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=8, color="dimgrey")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str, classes: Sequence[str] | None = None) -> None:
    """Confusion matrix normalised per true class (each row sums to 100 %)."""
    plt = pyplot()
    counts = confusion_matrix(y_true, y_pred, len(classes) if classes else 10)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, "float64"), where=totals > 0) * 100
    labels = list(classes) if classes else [str(i) for i in range(len(counts))]
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    ax.grid(False)
    for i in range(len(share)):
        for j in range(len(share)):
            if counts[i, j] and len(share) <= 20:  # numbers in the cells while they fit
                value = share[i, j]
                text = f"{value:.0f}" if value >= 9.5 or value == 0 else f"{value:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if value > 60 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if classes else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = 100 * float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    ax.set_title(f"{title}\n{len(y_true):,} test images, accuracy {accuracy:.2f} %; cells: % of the true class")
    fig.colorbar(image, ax=ax, label="% of the true class", fraction=0.046, pad=0.04)
    fig.tight_layout()
    save_figure(fig, path)


def run_title(config: dict[str, Any]) -> str:
    """`finetune efficientnet_lite0 (imagenet weights, 40 px) on mnist, 100 per class`, for a run's figures."""
    what = config["mode"]
    if config["mode"] in BACKBONE_MODES:
        weights = config["weights"]
        start = {"imagenet": "ImageNet weights", "none": "random init", None: "random init"}.get(weights) or f"weights of {Path(weights).parent.name}"
        what += f" {config['backbone']} ({start}, {config['img_size']} px)"
    data = f"{config['per_class']} per class" if config.get("per_class") else (f"{config['limit']:,} images" if config.get("limit") else "all images")
    return f"{what} on {Path(config['dataset']).name}, {data}"


def write_run_figures(run_dir: Path, rows: list[dict[str, Any]], y_true: np.ndarray, y_pred: np.ndarray, config: dict[str, Any],
                      class_names: Sequence[str]) -> None:
    """curves.png and confusion.png of one run."""
    title = run_title(config)
    if rows:
        smoothing = config.get("label_smoothing") or 0
        loss = f"loss (cross-entropy, label smoothing {smoothing:g})" if smoothing else "loss (cross-entropy)"
        run_curves(rows, Path(run_dir) / runs.CURVES, title, loss)
    classes = None if config["dataset"] == "mnist" else list(class_names)
    confusion(y_true, y_pred, Path(run_dir) / runs.CONFUSION, title, classes)


# The comparison ---------------------------------------------------------------------------------

Series = dict[str, list[tuple[float, float]]]  # label -> [(x, y)]


def accuracy_lines(
    series: Series, path: Path, title: str, xlabel: str, log_x: bool = False, colors: dict[str, str] | None = None
) -> None:
    """Validation accuracy (%) of several runs against epochs or seconds, the 95 % line marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    lowest = 100.0
    for label, points in series.items():
        if not points:
            continue
        xs, ys = zip(*points)
        ys = [100 * y for y in ys]
        lowest = min(lowest, *ys)
        ax.plot(xs, ys, "-o", markersize=3, label=label, color=(colors or {}).get(label))
    ax.axhline(100 * TARGET_ACCURACY, color="black", linestyle="--", linewidth=1, label=f"{100 * TARGET_ACCURACY:.0f} %")
    ax.set_ylim(max(0.0, min(lowest, 100 * TARGET_ACCURACY) - 2), 100.5)
    if log_x:
        _plain_log_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    _legend_below(fig, ax)
    save_figure(fig, path)


def _legend_below(fig, ax) -> None:
    """The legend under the axes, inside the figure: with six contenders no corner of the plot is free."""
    handles, labels = ax.get_legend_handles_labels()
    columns = 2 if len(labels) > 3 else len(labels)
    fig.tight_layout(rect=(0, 0.02 + 0.036 * -(-len(labels) // max(1, columns)), 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize=9, frameon=False)


def _plain_log_axis(ax) -> None:
    """A log x axis ticked at 1, 2, 5 x 10^k with plain numbers (no 3x10^0 labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:.2g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def data_efficiency(
    curves: dict[str, list[tuple[float, list[float]]]], path: Path, title: str, tick_labels: dict[float, str] | None = None,
    colors: dict[str, str] | None = None,
) -> None:
    """Test accuracy (%) against labelled images per class (log x): mean line, min-max bar, one dot per seed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    for k, (label, points) in enumerate(curves.items()):
        points = sorted(p for p in points if p[1])
        if not points:
            continue
        color = (colors or {}).get(label, f"C{k}")
        xs = [x for x, _ in points]
        means = [100 * float(np.mean(v)) for _, v in points]
        low = [m - 100 * min(v) for m, (_, v) in zip(means, points)]
        high = [100 * max(v) - m for m, (_, v) in zip(means, points)]
        ax.errorbar(xs, means, yerr=[low, high], fmt="-o", color=color, markersize=4, capsize=3, label=label)
        for x, values in points:
            if len(values) > 1:
                ax.plot([x] * len(values), [100 * v for v in values], ".", color=color, alpha=0.4)
    ax.set_xscale("log")
    ticks = sorted({x for points in curves.values() for x, _ in points})
    ax.set_xticks(ticks, [(tick_labels or {}).get(x, f"{x:g}") for x in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images per class (log scale; validation included)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    _legend_below(fig, ax)
    save_figure(fig, path)


def misclassified_grid(
    images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, path: Path, title: str,
    columns: int = 8, rows: int = 4,
) -> None:
    """The most confident mistakes: each digit titled with its true and predicted class."""
    plt = pyplot()
    wrong = np.flatnonzero(y_true != y_pred)
    wrong = wrong[np.argsort(-confidence[wrong].astype("float32"), kind="stable")][: columns * rows]
    shown_rows = max(1, -(-len(wrong) // columns))
    fig, axes = plt.subplots(shown_rows, columns, figsize=(1.4 * columns, 1.65 * shown_rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i].squeeze(), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"true {y_true[i]}\npred {y_pred[i]} ({100 * float(confidence[i]):.0f} %)", fontsize=9, color="firebrick")
    if not len(wrong):
        axes.flat[0].text(0, 0.5, "no misclassified test images", fontsize=11)
    fig.suptitle(f"{title}\n{len(np.flatnonzero(y_true != y_pred)):,} of {len(y_true):,} test images wrong; "
                 f"the {len(wrong)} most confident mistakes (% = predicted probability)")
    fig.tight_layout()
    save_figure(fig, path)
