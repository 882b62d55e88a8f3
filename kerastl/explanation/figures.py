"""The explanation's figures, drawn as kerastl.plots draws (titled, axes in words, units and image
counts in titles, legends inside the figure)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from kerastl.explanation.probe import FINE_TUNED, IMAGENET, PIXELS, RANDOM, WEIGHT_LABELS, ProbeRow
from kerastl.plots import pyplot, save_figure

PROBE_FIGURE = "probe_by_block.png"
FILTERS_FIGURE = "filters.png"
FEATURE_MAPS_FIGURE = "feature_maps.png"
EMBEDDING_FIGURE = "embedding.png"
SALIENCY_FIGURE = "saliency.png"
COLORS = {IMAGENET: "C0", RANDOM: "C7", FINE_TUNED: "C2"}


def probe_by_block(rows: Sequence[ProbeRow], path: Path, title: str) -> None:
    """Linear-probe test accuracy (%) against depth, one line per set of weights, raw pixels dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.2))
    blocks = [r for r in rows if r.weights == IMAGENET]
    for weights in (IMAGENET, FINE_TUNED, RANDOM):
        line = [r for r in rows if r.weights == weights]
        if line:
            ax.plot([r.depth for r in line], [100 * r.test_accuracy for r in line], "-o", markersize=4,
                    color=COLORS[weights], label=WEIGHT_LABELS[weights])
    pixels = next((r for r in rows if r.weights == PIXELS), None)
    if pixels:
        ax.axhline(100 * pixels.test_accuracy, color="black", linestyle="--", linewidth=1,
                   label=f"{WEIGHT_LABELS[PIXELS]} ({100 * pixels.test_accuracy:.1f} %)")
    best = max(blocks, key=lambda r: (r.test_accuracy, -r.depth))
    ax.plot([best.depth], [100 * best.test_accuracy], "*", markersize=14, color=COLORS[IMAGENET], markeredgecolor="black",
            linestyle="none", label=f"best ImageNet block: {best.block} ({100 * best.test_accuracy:.1f} %)")
    _finish_depth_plot(fig, ax, blocks, path, title)


def _finish_depth_plot(fig, ax, blocks: Sequence[ProbeRow], path: Path, title: str) -> None:
    """Block names along x, accuracy 0-100 % up y, the legend where it hides least; saved."""
    ax.set_xticks([r.depth for r in blocks], [r.block.replace("block", "b") for r in blocks], fontsize=8)
    ax.set_xlabel("block the features are taken after (stem = first, top = last)")
    ax.set_ylabel("linear-probe test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def _montage(kernel: np.ndarray, columns: int = 8) -> np.ndarray:
    """Filters [k, k, channels, n] side by side in an RGB grid [h, w, 3], each scaled to [0, 1] on its
    own (one channel shown as grey), with a one-pixel light-blue border that no weight can be."""
    k, _, channels, n = kernel.shape
    rows = -(-n // columns)
    grid = np.empty((rows * (k + 1) + 1, columns * (k + 1) + 1, 3), "float32")
    grid[...] = (0.7, 0.8, 1.0)
    for i in range(n):
        f = kernel[..., i]
        f = (f - f.min()) / (f.max() - f.min() + 1e-12)
        top, left = 1 + (i // columns) * (k + 1), 1 + (i % columns) * (k + 1)
        grid[top : top + k, left : left + k] = f if channels == 3 else f[..., :1]
    return grid


def filters(kernels: dict[str, np.ndarray], layer: str, path: Path, title: str) -> None:
    """The first convolution's filters, one column per set of weights: as the RGB filters they are,
    and as a grey image sees them (the sum over the three colour channels, since a grey digit is
    tiled to R = G = B). Each filter is scaled to its own range."""
    plt = pyplot()
    shape = next(iter(kernels.values())).shape
    fig, axes = plt.subplots(2, len(kernels), figsize=(3.9 * len(kernels) + 0.6, 5.2), squeeze=False, layout="constrained")
    for col, (weights, kernel) in enumerate(kernels.items()):
        grey = kernel.sum(axis=2, keepdims=True)
        for row, (shown, view) in enumerate(((kernel, "as RGB filters"), (grey, "on a grey image (R + G + B)"))):
            ax = axes[row, col]
            ax.imshow(_montage(shown), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{WEIGHT_LABELS[weights].split(',')[0]}\n{view}", fontsize=9)
    fig.suptitle(f"{title}\nfirst convolution ({layer}): {shape[-1]} filters of {shape[0]}x{shape[1]} pixels x {shape[2]} "
                 "colour channels,\neach scaled from its own lowest (black) to its highest weight (white)")
    save_figure(fig, path)


def most_active(fmap: np.ndarray, channels: int) -> np.ndarray:
    """The `channels` channels of a feature map [h, w, c] with the highest mean activation, passing
    over channels that are the same everywhere (a saturated or silent channel shows no picture)."""
    varying = fmap.reshape(-1, fmap.shape[-1]).std(axis=0) > 1e-6
    order = np.argsort(-fmap.mean(axis=(0, 1)), kind="stable")
    return np.concatenate([order[varying[order]], order[~varying[order]]])[:channels]


def feature_maps(image: np.ndarray, maps: dict[str, dict[str, np.ndarray]], path: Path, title: str, channels: int = 4) -> None:
    """One image's feature maps at a few depths: its `channels` most active channels per depth,
    ImageNet weights next to random ones (rows: depths; columns: channels), one colour scale per row."""
    plt = pyplot()
    weight_sets = list(maps)
    depths = list(next(iter(maps.values())))
    columns = 1 + channels * len(weight_sets)
    fig, axes = plt.subplots(len(depths), columns, figsize=(1.35 * columns + 0.6, 1.75 * len(depths) + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(image.squeeze(), cmap="gray_r" if image.shape[-1] == 1 else None)
    axes[0, 0].set_title("input image", fontsize=9)
    for row, depth in enumerate(depths):
        sample = maps[weight_sets[0]][depth]
        label = f"after {depth}\n{sample.shape[0]}x{sample.shape[1]} map\n{sample.shape[2]} channels"
        axes[row, 0].text(0.5, -0.08 if row == 0 else 0.5, label, fontsize=8, ha="center", va="top" if row == 0 else "center",
                          transform=axes[row, 0].transAxes)
        for w, weights in enumerate(weight_sets):
            fmap = maps[weights][depth]
            strongest = most_active(fmap, channels)
            high = float(fmap[..., strongest].max()) or 1.0
            for c, channel in enumerate(strongest):
                ax = axes[row, 1 + w * channels + c]
                ax.imshow(fmap[..., channel], cmap="magma", vmin=0, vmax=high, interpolation="nearest")
                ax.set_title(f"channel {channel}", fontsize=7)
    fig.subplots_adjust(top=0.86, hspace=0.35)
    for w, weights in enumerate(weight_sets):
        first, last = axes[0, 1 + w * channels].get_position(), axes[0, w * channels + channels].get_position()
        fig.text((first.x0 + last.x1) / 2, first.y1 + 0.035, WEIGHT_LABELS[weights], ha="center", va="bottom", fontsize=10,
                 color=COLORS[weights])
    fig.suptitle(f"{title}\nat each depth the {channels} most active channels (highest mean activation, among those that "
                 "vary across the image);\nbright = strong, one colour scale per depth and set of weights", y=1.01, fontsize=11)
    save_figure(fig, path)


def embedding(panels: list[tuple[str, float, np.ndarray, np.ndarray | None]], labels: np.ndarray, class_names: Sequence[str],
              path: Path, title: str) -> None:
    """2-D maps of test images, coloured by class: one column per representation (titled with its
    linear-probe accuracy), PCA in the first row and t-SNE in the second where it was computed."""
    plt = pyplot()
    methods = ["PCA"] + (["t-SNE"] if any(p[3] is not None for p in panels) else [])
    fig, axes = plt.subplots(len(methods), len(panels), figsize=(3.6 * len(panels), 3.5 * len(methods) + 1.2), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for col, (name, accuracy, pca, tsne) in enumerate(panels):
        for row, points in enumerate((pca, tsne)[: len(methods)]):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if points is None:
                ax.axis("off")
                continue
            for c in range(len(class_names)):
                chosen = labels == c
                ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=cmap(c % cmap.N), label=class_names[c])
            ax.set_title(f"{name}\n{methods[row]}; linear probe {100 * accuracy:.1f} %", fontsize=9)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(10, len(names)), fontsize=9, markerscale=3, frameon=False,
               title="class")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    save_figure(fig, path)


def saliency(images: np.ndarray, maps: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray,
             class_names: Sequence[str], mistakes: int, path: Path, title: str) -> None:
    """Each image with its occlusion map over it: red where covering the image lowers the model's
    confidence in the class it predicted, blue where it raises it. Mistakes first (titled in red),
    then correct images."""
    plt = pyplot()
    columns = min(6, len(images))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns + 1.2, 2.15 * rows + 1.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    limit = max(1e-6, float(np.abs(maps).max()))
    shown = None
    for k, ax in enumerate(axes.flat[: len(images)]):
        ax.imshow(images[k].squeeze(), cmap="gray_r" if images[k].shape[-1] == 1 else None)
        shown = ax.imshow(maps[k], cmap="bwr", vmin=-limit, vmax=limit, alpha=0.5)
        wrong = y_true[k] != y_pred[k]
        ax.set_title(f"true {class_names[y_true[k]]}\npred {class_names[y_pred[k]]} ({100 * confidence[k]:.0f} %)", fontsize=9,
                     color="firebrick" if wrong else "black")
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02)
        bar.set_label("drop in the predicted class's log-odds\nwhen a patch covers the pixel")
    fig.suptitle(f"{title}\n{mistakes} most confident mistakes (red titles), then {len(images) - mistakes} correct images")
    save_figure(fig, path)


def probe_by_dataset(lines: dict[str, Sequence[ProbeRow]], path: Path, title: str) -> None:
    """Several targets in one figure: ImageNet (solid) and random (dotted) probe accuracy per block,
    one colour per dataset."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.2))
    for k, (dataset, rows) in enumerate(lines.items()):
        for weights, style in ((IMAGENET, "-o"), (RANDOM, ":s")):
            line = [r for r in rows if r.weights == weights]
            ax.plot([r.depth for r in line], [100 * r.test_accuracy for r in line], style, markersize=4, color=f"C{k}",
                    label=f"{dataset}: {WEIGHT_LABELS[weights]}")
    _finish_depth_plot(fig, ax, [r for r in next(iter(lines.values())) if r.weights == IMAGENET], path, title)
