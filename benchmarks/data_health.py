"""`kerastl.inspect` measured: the planted Fashion-MNIST folder (tests/planted_folder.py) and all of
MNIST.

    python benchmarks/data_health.py planted      # recall of the planted problems, rows, wall time
    python benchmarks/data_health.py mnist        # label findings on MNIST's test split, wall time;
                                                  # writes docs/inspect_mnist_labels.png (the top 16)
    python benchmarks/data_health.py fit          # fit --mode cnn on the planted folder: its check's
                                                  # count and cost, test accuracy with and without copies

Planted: 8 test pictures copied byte for byte into train/, 8 re-encoded (JPEG, 34-40 px, brighter,
shifted 1-2 px) and 12 training pictures moved to a wrong class. The cheap label head (a logistic
regression on 128 principal components of the frozen features) is compared with a stronger one, a
scikit-learn MLP on all 1,280 features, both out of fold.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def planted() -> None:
    import kerastl
    from kerastl.data.sources import load_arrays
    from kerastl.inspection import features, labels, pictures
    from tests.planted_folder import build

    tmp = Path(tempfile.mkdtemp())
    folder = build(tmp / "planted", load_arrays("fashion_mnist", log=lambda _: None))
    start = time.perf_counter()
    result = kerastl.inspect(folder.root, output_dir=tmp / "out", log=lambda _: None)
    seconds = time.perf_counter() - start
    pairs = {kind: {frozenset((f.file, f.other)) for f in result.of_kind(kind)} for kind in ("duplicate", "near_duplicate")}
    suggested = {f.file: f.other for f in result.of_kind("label")}
    print("| planted | found | rows of that kind |")
    print("| --- | ---: | ---: |")
    print(f"| {len(folder.copies)} byte-for-byte copies of test pictures in train | "
          f"{sum(frozenset(c) in pairs['duplicate'] for c in folder.copies)} | {len(pairs['duplicate'])} duplicate |")
    print(f"| {len(folder.reencoded)} re-encoded copies (JPEG, 34-40 px, brighter, shifted 1-2 px) | "
          f"{sum(frozenset(c) in pairs['near_duplicate'] for c in folder.reencoded)} | {len(pairs['near_duplicate'])} near_duplicate |")
    print(f"| {len(folder.moved)} training pictures moved to a wrong class | {sum(m in suggested for m, _ in folder.moved)} "
          f"(suggested class right: {sum(suggested.get(m) == c for m, c in folder.moved)}) | {len(suggested)} label |")
    print(f"\nwall time {seconds:.0f} s ({result.timings}); {result.leak_count} test pictures with a copy in train; "
          f"floor: pixels {result.floor['pixels']:.3f}, features {result.floor['features']:.3f}")
    # the cheap head against a stronger one, on the same features, out of fold
    found = pictures.load_folder(folder.root, log=lambda _: None)
    embedded = features.backbone_features(found.thumbs, log=lambda _: None)
    moved = {m for m, _ in folder.moved}
    print("\n| head on the frozen features (out of fold) | accuracy | label rows | moved pictures among them | seconds |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, probabilities_of in (("logistic regression on 128 principal components (inspect's)", labels.out_of_fold_probabilities),
                                   ("MLP, 512 hidden units, all 1,280 features", _mlp_probabilities)):
        start = time.perf_counter()
        probabilities = probabilities_of(embedded, found.labels)
        issues = labels.confident_learning(probabilities, found.labels)
        print(f"| {name} | {labels.accuracy(probabilities, found.labels):.3f} | {len(issues)} | "
              f"{sum(str(found.names[i.index]) in moved for i in issues)} | {time.perf_counter() - start:.0f} |")
    shutil.rmtree(tmp, ignore_errors=True)


def _mlp_probabilities(inputs: np.ndarray, labels_given: np.ndarray) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), MLPClassifier((512,), alpha=1e-3, max_iter=200, early_stopping=True, random_state=0))
    return cross_val_predict(head, inputs, labels_given, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")


def fit_check() -> None:
    import kerastl
    from kerastl.data.sources import load_arrays
    from tests.planted_folder import build

    tmp = Path(tempfile.mkdtemp())
    folder = build(tmp / "planted", load_arrays("fashion_mnist", log=lambda _: None))
    m = kerastl.run(mode="cnn", dataset=str(folder.root), output_dir=str(tmp / "runs")).metrics
    print(f"\nfit --mode cnn: {m['copies_in_train']} validation/test pictures with a copy in train, found in "
          f"{m['data_check_seconds']:.1f} s of a {m['wall_seconds']:.0f} s run ({m['data_check_seconds'] / m['wall_seconds']:.1%}); "
          f"test accuracy {m['test_accuracy']:.4f}, {m['test_accuracy_without_copies']:.4f} without the copies; "
          f"raw-pixel floor {m['pixel_floor_accuracy']:.4f}")
    shutil.rmtree(tmp, ignore_errors=True)


def mnist() -> None:
    import kerastl
    from kerastl.inspection.pictures import load_builtin
    from kerastl.inspection.report import contact_sheet

    tmp = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    result = kerastl.inspect("mnist", output_dir=tmp / "out")
    seconds = time.perf_counter() - start
    label_rows = result.of_kind("label")
    on_test = [f for f in label_rows if f.file.startswith("test/")]
    print(f"\nMNIST: {seconds / 60:.1f} minutes ({result.timings}); floor: pixels {result.floor['pixels']:.4f}, "
          f"features {result.floor['features']:.4f}")
    print(f"label findings: {len(label_rows)} in all, {len(on_test)} on the test split (Northcutt et al. 2021 sent 100 "
          "of MNIST's test pictures flagged by confident learning to people)")
    print(f"copies: {len(result.of_kind('duplicate'))} duplicate, {len(result.of_kind('near_duplicate'))} near_duplicate; "
          f"{result.leak_count} test pictures with a copy in train")
    print("top 16 on test:", ", ".join(f"{f.file} {f.detail.split(';')[0].removeprefix('in ')}→{f.other}" for f in on_test[:16]))
    found = load_builtin("mnist", log=lambda _: None)
    index = {str(name): i for i, name in enumerate(found.names)}
    contact_sheet(ROOT / "docs" / "inspect_mnist_labels.png", "label", on_test[:16], found, index, len(on_test))


if __name__ == "__main__":
    {"planted": planted, "mnist": mnist, "fit": fit_check}[sys.argv[1] if len(sys.argv) > 1 else "planted"]()
