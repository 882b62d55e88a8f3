"""Other detectors on a finished MNIST or Fashion-MNIST run's own features: could the gate abstain better?

    python benchmarks/detector_variants.py RUN_DIR [--k 64 128 256]

Reads the run's trained model (without its gate), rebuilds its splits from the config, and takes
the features `fit`'s confidence step reads (kerastl.confidence.features) of the same training
pictures, the validation and test splits and every outside set (kerastl.confidence.outside, up to
10,000 pictures a set). Then, each at a threshold keeping the run's share of validation pictures:
- the gate as `fit` ships it (calibrated probability x the in-distribution weight);
- the Mahalanobis distance alone (a hard gate), tied covariance, as the gate's detector fits it;
- the same on unit-length features;
- the distance in the leading K directions of the covariance plus the rest as one isotropic term
  (probabilistic PCA): a d x K whitening instead of d x d, so a smaller and faster gate.
Prints one markdown table: the share of test pictures kept (and right) and of each outside set
answered (AUROC against the test pictures). Nothing in the run folder changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def features(run_dir: Path) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]]:
    """(metrics, {split or set: (features, logits, labels or None)}), the training pictures as job.fit picks them."""
    from kerastl import runs
    from kerastl.confidence import job, outside
    from kerastl.confidence.features import features_and_logits
    from kerastl.confidence.model import ungated
    from kerastl.data import load_arrays, make_splits
    from kerastl.model_files import load_keras_model

    config, metrics = runs.read_config(run_dir), runs.read_metrics(run_dir)
    model = ungated(load_keras_model(run_dir / runs.MODEL))
    splits = make_splits(load_arrays(config["dataset"], config.get("data_dir")), config["validation_fraction"],
                         config.get("limit"), config.get("test_limit"), config["seed"], config.get("per_class"))
    chosen = np.sort(np.random.default_rng(config["seed"]).permutation(len(splits.y_train))[:job.DETECTOR_IMAGES])
    batch = config["batch_size"]
    out = {}
    for name, x, y in (("train", splits.x_train[chosen], splits.y_train[chosen]), ("val", splits.x_val, splits.y_val),
                       ("test", splits.x_test, splits.y_test)):
        out[name] = (*features_and_logits(model, x, batch), np.asarray(y))
    for name, make in outside.sets_for(config["dataset"], tuple(model.input_shape[1:]), limit=10_000,
                                       data_dir=config.get("data_dir"), log=lambda _: None).items():
        out[name] = (*features_and_logits(model, make(), batch), None)
    return metrics, out


def leading_directions_distance(train_f: np.ndarray, train_y: np.ndarray, classes: int, k: int):
    """A function features -> smallest distance: Mahalanobis in the covariance's k leading
    directions, plus the squared rest divided by the mean variance of the other directions."""
    from kerastl.confidence.detector import SHRINKAGE

    f = np.asarray(train_f, "float64")
    means = np.stack([f[train_y == c].mean(axis=0) for c in range(classes)])
    centred = f - means[train_y]
    covariance = centred.T @ centred / (len(f) - classes)
    covariance += SHRINKAGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    variances, directions = np.linalg.eigh(covariance)
    variances, directions = variances[::-1], directions[:, ::-1]
    rest = variances[k:].mean()

    def distance(x: np.ndarray) -> np.ndarray:
        per_class = []
        for mean in means:
            offset = np.asarray(x, "float64") - mean
            projected = offset @ directions[:, :k]
            per_class.append((projected ** 2 / variances[:k]).sum(axis=1)
                             + ((offset ** 2).sum(axis=1) - (projected ** 2).sum(axis=1)) / rest)
        return np.stack(per_class, axis=1).min(axis=1)

    return distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--k", type=int, nargs="+", default=[64, 128, 256])
    args = parser.parse_args()

    from kerastl.confidence import calibration, threshold
    from kerastl.confidence.detector import GaussianDetector, auroc, to_unit_length
    from kerastl.confidence.job import _gate

    metrics, data = features(Path(args.run_dir))
    keep = metrics["confidence"][threshold.KEY]
    (train_f, _, train_y), (val_f, val_z, val_y), (test_f, test_z, test_y) = data["train"], data["val"], data["test"]
    classes = int(test_z.shape[1])
    sets = [name for name in data if name not in ("train", "val", "test")]
    right = test_z.argmax(axis=1) == test_y

    detector = GaussianDetector.fit(train_f, train_y, classes)
    gate = _gate(calibration.fit_temperature(val_z, val_y), detector, detector.min_distance(val_f))
    unit = GaussianDetector.fit(to_unit_length(train_f), train_y, classes)
    scores = {  # higher = more in-distribution
        "the gate as fit ships it": lambda f, z: gate.scores(z, f).max(axis=1),
        "distance alone": lambda f, z: -detector.min_distance(f),
        "distance alone, unit-length features": lambda f, z: -unit.min_distance(to_unit_length(f)),
    }
    for k in args.k:
        if k < train_f.shape[1]:
            distance = leading_directions_distance(train_f, train_y, classes, k)
            scores[f"distance alone, {k} leading directions + the rest"] = lambda f, z, distance=distance: -distance(f)

    print(f"{args.run_dir}: {len(train_y):,} training pictures, {train_f.shape[1]} features; thresholds keep {100 * keep:g} % "
          f"of {len(val_y):,} validation pictures\n")
    print("| detector | test pictures answered (right) | " + " | ".join(sets) + " |")
    print("| --- | --- |" + " --- |" * len(sets))
    for name, score in scores.items():
        chosen = threshold.choose(score(val_f, val_z), keep)
        inside = score(test_f, test_z)
        kept = threshold.answered(inside, chosen)
        cells = [f"{100 * kept.mean():.2f} % ({100 * right[kept].mean():.2f} %)"]
        for set_name in sets:
            outside = score(data[set_name][0], data[set_name][1])
            cells.append(f"{100 * threshold.answered(outside, chosen).mean():.1f} % ({auroc(inside, outside):.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
