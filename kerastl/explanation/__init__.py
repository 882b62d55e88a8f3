"""`kerastl.explain(...)` and `python -m kerastl.explain`: why transfer works, measured.

    import kerastl
    folder = kerastl.explain()                        # EfficientNet-Lite0's ImageNet weights on MNIST
    folder = kerastl.explain("saved_models/finetune-mnist-...")   # a run: its backbone, data, size and weights

Writes one folder (default `saved_models/explain-<dataset>-<time>/`), read top-down:

1. a linear probe after every block (`probe.csv`, `probe_by_block.png`): ImageNet weights, random
   weights (batch norm re-estimated) and the run's fine-tuned weights (kerastl.explanation.probe);
2. what the backbone sees (`filters.png`, `feature_maps.png`);
3. embeddings of the test images (`embedding.png`: PCA and t-SNE, each panel titled with its probe accuracy);
4. where the classifier looks (`saliency.png`: occlusion sensitivity, kerastl.explanation.occlusion);
5. `report.md`: the best block, the gap to random at each depth, what that means for `--unfreeze N`,
   checked by one short `--mode partial` run at that depth (in `check/`).

Everything is written into a hidden folder beside the output and renamed into place at the end, so
a failed or interrupted explanation leaves nothing half-written.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from kerastl import xla_cpu
from kerastl.backbones import backbone_spec
from kerastl.backbones.registry import label as backbone_label
from kerastl.data.datasets import DATASETS, label as dataset_label
from kerastl.explanation import job as job_module, occlusion
from kerastl.explanation.job import EXPLAIN_BUDGETS, ExplainBudget, Job
from kerastl.files import atomic_write_text
from kerastl.log import Log
from kerastl.model_files import keras_predict

CHECK_DIR = "check"  # the partial run that checks the probe's advice
TSNE_PCA_DIMENSIONS = 50  # t-SNE runs on the first principal components, as its authors advise


def explain(run=None, *, backbone: str | None = None, dataset: str | None = None, budget: str | ExplainBudget = "quick",
            output_dir: str | Path | None = None, train_images: int | None = None, test_images: int | None = None,
            check: bool = True, command: str | None = None, log: Log = print) -> Path:
    """Explain a backbone on a dataset (or a finished transfer run); returns the folder written.

    `run` is a run folder or a `kerastl.Run` of mode feature, finetune or partial; it decides the
    backbone, dataset and input size. `budget` is "quick" (about 1,000 training / 2,000 test images,
    minutes on a CPU) or "full"; `train_images` / `test_images` override its numbers. `check=False`
    skips the partial run that checks the advice. Raises kerastl.UserError for bad input.
    """
    start = time.perf_counter()
    job = job_module.resolve(os.fspath(run) if run is not None else None, backbone, dataset, budget, output_dir, train_images, test_images)
    work = job.output_dir.parent / f".{job.output_dir.name}.partial-{os.getpid()}"
    job.output_dir.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir()
    try:
        facts = _explain_into(work, job, check, log)
        facts.update(command=command or _python_call(run, backbone, dataset, budget, output_dir, train_images, test_images, check))
        facts["seconds"] = time.perf_counter() - start
        _write_report(work, facts)
        if job.output_dir.exists():
            job.output_dir.rmdir()  # an empty folder the user named
        os.replace(work, job.output_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"explain: done in {time.perf_counter() - start:.0f} s; report: {job.output_dir / 'report.md'}")
    return job.output_dir


def _explain_into(folder: Path, job: Job, check: bool, log: Log) -> dict[str, Any]:
    import keras  # deferred, as the modules below: `explain --help` and a bad flag answer without Keras

    from kerastl import runtime
    from kerastl.explanation import contenders, figures, probe

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = time.perf_counter() - clock
        clock = time.perf_counter()

    xla_cpu.use_fast_convolutions()
    keras.utils.set_random_seed(job.seed)

    # Prepare the data and the backbones
    data = job_module.load_data(job, log)
    spec = backbone_spec(job.backbone)
    adapter = contenders.adapter_model(job.backbone, job.img_size, data.info.image_shape)
    backbones = contenders.build_contenders(job, adapter, data.x_train, log)
    log(f"explain: {spec.model_name} at {job.img_size} px, {len(data.y_train):,} training and {len(data.y_test):,} test images "
        f"of {Path(job.dataset).name}; weights: {', '.join(backbones)}")
    lap("data and backbones")

    # 1. A linear probe after every block
    rows = [probe.pixel_row(data.x_train, data.y_train, data.x_test, data.y_test)]
    features: dict[str, tuple[dict, dict]] = {}
    for weights, backbone in backbones.items():
        train = probe.block_features(spec, backbone, adapter, data.x_train)
        test = probe.block_features(spec, backbone, adapter, data.x_test)
        features[weights] = (train, test)
        rows += probe.probe_rows(weights, train, data.y_train, test, data.y_test)
        best = max((r for r in rows if r.weights == weights), key=lambda r: r.test_accuracy)
        log(f"explain: probe, {weights} weights: {len(train)} blocks, best after {best.block} ({100 * best.test_accuracy:.1f} %)")
    probe.write_csv(folder / probe.PROBE_CSV, rows)
    title = f"{backbone_label(spec.model_name)} at {job.img_size} px on {dataset_label(job.dataset)}"
    counts = f"{len(data.y_train):,} training / {len(data.y_test):,} test images"
    figures.probe_by_block(rows, folder / figures.PROBE_FIGURE,
                           f"Linear probe after every block: {title}\n{counts}; each block's output global-average-pooled")
    drawn = {"probe": figures.PROBE_FIGURE}
    lap("linear probe")

    # 2. What the backbone sees
    from kerastl.explanation import report  # imports Keras (the figures)

    best = report.best_block(rows)
    _draw_filters(folder, backbones, title)
    drawn["filters"] = figures.FILTERS_FIGURE
    _draw_feature_maps(folder, spec, backbones, adapter, data, title)
    drawn["feature_maps"] = figures.FEATURE_MAPS_FIGURE
    lap("filters and feature maps")

    # 3. Embeddings
    _draw_embedding(folder, job, rows, features, data, best.block, title)
    drawn["embedding"] = figures.EMBEDDING_FIGURE
    lap("embeddings")

    # 4. Where the classifier looks
    classifier, classifier_name = _classifier(job, spec, backbones, adapter, features, data, best.block)
    _draw_saliency(folder, job, classifier, classifier_name, data)
    drawn["saliency"] = figures.SALIENCY_FIGURE
    lap("saliency")

    # 5. Check the advice with one short partial run
    checked = _check_run(folder, job, rows, data, log) if check and job.budget.check_min_steps else None
    if checked:
        lap("check run")
    run = job.run
    per_class = -(-job.budget.train_images // data.info.num_classes)
    return {
        "rows": rows, "figures": drawn, "timings": timings, "check": checked,
        "backbone_label": backbone_label(spec.model_name), "dataset_label": dataset_label(job.dataset), "budget": job.budget.name,
        "train_images": len(data.y_train), "test_images": len(data.y_test), "per_class": per_class, "seed": job.seed,
        "img_size": job.img_size, "backend": runtime.backend(),
        "run": str(run.folder) if run else None, "run_mode": run.config["mode"] if run else None,
        "run_accuracy": run.metrics.get("test_accuracy") if run else None, "run_test_images": run.metrics.get("test_images") if run else None,
    }


def _draw_filters(folder: Path, backbones: dict, title: str) -> None:
    import keras  # deferred: Keras starts only when explain runs

    from kerastl.explanation import figures

    kernels, layer_name = {}, ""
    for weights, backbone in backbones.items():
        first = next(layer for layer in backbone.layers if type(layer) is keras.layers.Conv2D)
        kernels[weights] = keras.ops.convert_to_numpy(first.kernel)
        layer_name = first.name
    figures.filters(kernels, layer_name, folder / figures.FILTERS_FIGURE, f"What the first layer looks for: {title}")


def _draw_feature_maps(folder: Path, spec, backbones: dict, adapter, data, title: str) -> None:
    import keras  # deferred: Keras starts only when explain runs

    from kerastl.explanation import figures, probe

    maps = {}
    for weights in (probe.IMAGENET, probe.RANDOM):
        backbone = backbones[weights]
        ends = probe.block_outputs(spec, backbone)
        chosen = sorted({0, len(ends) // 4, len(ends) // 2, len(ends) - 1})
        taps = keras.Model(backbone.input, [ends[i][1].output for i in chosen])
        outputs = taps(adapter(data.x_test[:1].astype("float32")))
        maps[weights] = {ends[i][0]: keras.ops.convert_to_numpy(out)[0] for i, out in zip(chosen, outputs)}
    label = data.info.class_names[int(data.y_test[0])]
    figures.feature_maps(data.x_test[0], maps, folder / figures.FEATURE_MAPS_FIGURE,
                         f"What the backbone sees: {title}, test image 1 (class {label})")


def _draw_embedding(folder: Path, job: Job, rows, features, data, best_block: str, title: str) -> None:
    from sklearn.decomposition import PCA  # deferred: scikit-learn only for the embedding figure
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    from kerastl.explanation import figures, probe

    n = min(job.budget.embedding_images, len(data.y_test))
    accuracy = {(r.weights, r.block): r.test_accuracy for r in rows}
    top = list(features[probe.IMAGENET][1])[-1]
    chosen = [("raw pixels", accuracy[(probe.PIXELS, probe.PIXELS)], data.x_test[:n].reshape(n, -1).astype("float32")),
              (f"ImageNet, after {best_block} (best)", accuracy[(probe.IMAGENET, best_block)], features[probe.IMAGENET][1][best_block][:n])]
    if top != best_block:
        chosen.append((f"ImageNet, after {top}", accuracy[(probe.IMAGENET, top)], features[probe.IMAGENET][1][top][:n]))
    if probe.FINE_TUNED in features:
        chosen.append((f"fine-tuned, after {top}", accuracy[(probe.FINE_TUNED, top)], features[probe.FINE_TUNED][1][top][:n]))
    panels = []
    for name, acc, x in chosen:
        x = StandardScaler().fit_transform(x)
        pca = PCA(n_components=2, random_state=job.seed).fit_transform(x)
        compressed = PCA(n_components=min(TSNE_PCA_DIMENSIONS, *x.shape), random_state=job.seed).fit_transform(x)
        tsne = TSNE(n_components=2, init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=job.seed).fit_transform(compressed)
        panels.append((name, acc, pca, tsne))
    figures.embedding(panels, data.y_test[:n], data.info.class_names, folder / figures.EMBEDDING_FIGURE,
                      f"Test images in 2-D: {title}, {n:,} test images; a linear probe trained on {len(data.y_train):,} images")


def _classifier(job: Job, spec, backbones, adapter, features, data, best_block: str):
    """(raw pixels -> probabilities, its name): the run's model, else the probe at the best block."""
    import keras

    from kerastl.explanation import probe  # imports Keras

    if job.run is not None:
        return keras_predict(job.run.model), f"the run's model ({job.run.config['mode']})"
    train = features[probe.IMAGENET][0][best_block]
    classifier = probe.linear_probe(train, data.y_train, job.seed)
    backbone = backbones[probe.IMAGENET]
    end = dict(probe.block_outputs(spec, backbone))[best_block]
    taps = keras.Model(backbone.input, keras.layers.GlobalAveragePooling2D()(end.output))
    extractor = keras.Model(adapter.input, taps(adapter.output))

    def predict(pixels: np.ndarray) -> np.ndarray:
        pooled = extractor.predict(pixels, batch_size=probe.PREDICT_BATCH, verbose=0)
        return classifier.predict_proba(np.asarray(pooled))

    return predict, f"frozen ImageNet features after {best_block} + linear probe"


def _draw_saliency(folder: Path, job: Job, classifier, name: str, data) -> None:
    from kerastl.explanation import figures  # imports Keras

    probabilities = np.concatenate([classifier(data.x_test[i : i + 256].astype("float32")) for i in range(0, len(data.y_test), 256)])
    shown = occlusion.chosen_images(data.y_test, probabilities, job.budget.mistakes, job.budget.correct)
    fill = 0.0 if data.info.name in DATASETS else float(data.x_train.mean())  # MNIST's black background, else the mean
    side = data.x_test.shape[1]
    patch, stride = max(2, side // 5), max(1, side // 14)
    maps = np.stack([occlusion.occlusion_map(classifier, data.x_test[i], int(probabilities[i].argmax()), patch, stride, fill)
                     for i in shown])
    mistakes = int(np.sum(probabilities[shown].argmax(axis=1) != data.y_test[shown]))
    wrong = int(np.sum(probabilities.argmax(axis=1) != data.y_test))
    figures.saliency(data.x_test[shown], maps, data.y_test[shown], probabilities[shown].argmax(axis=1), probabilities[shown].max(axis=1),
                     data.info.class_names, mistakes, folder / figures.SALIENCY_FIGURE,
                     f"Where the classifier looks ({name}): {wrong:,} of {len(data.y_test):,} test images wrong; "
                     f"occlusion by a {patch}x{patch}-pixel patch, stride {stride}")


def _check_run(folder: Path, job: Job, rows, data, log: Log) -> dict[str, Any]:
    """One short `--mode partial` run that unfreezes the blocks after the best one, on the probe's data."""
    import kerastl
    from kerastl.explanation import report  # imports Keras (the figures)

    best = report.best_block(rows)
    unfreeze = max(1, report.advised_unfreeze(rows))
    per_class = -(-job.budget.train_images // data.info.num_classes)
    options = {"backbone": job.backbone, "dataset": job.dataset, "img_size": job.img_size, "unfreeze": unfreeze,
               "per_class": per_class, "test_limit": job.budget.test_images, "min_steps": job.budget.check_min_steps,
               "seed": job.seed, "output_dir": str(folder / CHECK_DIR), "run_name": f"partial-unfreeze-{unfreeze}"}
    command = "python -m kerastl.fit --mode partial " + " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in options.items() if k not in ("output_dir", "run_name"))
    log(f"explain: checking the advice: {command}")
    run = kerastl.run("partial", **options, log=lambda line: log(f"  check: {line}") if line.startswith(("stage", "test", "done")) else None)
    metrics = run.metrics
    return {"command": command, "test_accuracy": metrics["test_accuracy"], "test_images": metrics["test_images"],
            "train_images": metrics["train_images"], "seconds": metrics["wall_seconds"], "block": best.block,
            "probe_accuracy": best.test_accuracy, "unfreeze": unfreeze,
            "steps": sum(metrics["epochs_run"][s] * metrics["schedule"]["steps_per_epoch"] for s in metrics["epochs_run"]),
            "folder": f"{CHECK_DIR}/{run.folder.name}"}


def _write_report(folder: Path, facts: dict[str, Any]) -> None:
    from kerastl.explanation import report  # imports Keras (the figures)

    atomic_write_text(folder / report.REPORT, report.build(folder, facts["rows"], facts, facts["figures"]))


def _python_call(run, backbone, dataset, budget, output_dir, train_images, test_images, check) -> str:
    given = {"backbone": backbone, "dataset": dataset, "budget": budget if isinstance(budget, str) and budget != "quick" else None,
             "output_dir": os.fspath(output_dir) if output_dir else None, "train_images": train_images, "test_images": test_images,
             "check": None if check else False}
    args = ([repr(os.fspath(run))] if run is not None else []) + [f"{k}={v!r}" for k, v in given.items() if v is not None]
    return f"kerastl.explain({', '.join(args)})"


__all__ = ["EXPLAIN_BUDGETS", "ExplainBudget", "explain"]

