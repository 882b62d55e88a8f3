"""What the datasets are: their names, the shape of one image, and the names of their classes."""

from __future__ import annotations

from dataclasses import dataclass

DATASETS = ("mnist", "fashion_mnist")  # built in; any other `dataset` is a folder of images
IMAGE_SHAPE = (28, 28, 1)  # height, width, channels of the built-in datasets: uint8 grey levels 0..255
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}
LICENCES = {  # of the images, as their publishers state them
    "mnist": "CC BY-SA 3.0 (MNIST, Yann LeCun and Corinna Cortes, a derivative of NIST's data)",
    "fashion_mnist": "MIT (Fashion-MNIST, Zalando SE)",
}
# RGB to grey: ITU-R 601-2 luma, the weights of PIL's convert("L") (so of `predict`'s digit pictures).
# Image folders of grey pictures convert colour files with them, and the LiteRT files of a model
# trained on grey images convert an app's RGB pictures with them.
GREY_WEIGHTS = (0.299, 0.587, 0.114)
# Pixel statistics of the MNIST train split, for models trained from scratch on the built-in datasets.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


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
    return DataInfo(name, tuple(CLASS_NAMES[name]))
