"""What the datasets are: their names, the shape of one image, and the names of their classes."""

DATASETS = ("mnist", "fashion_mnist")
IMAGE_SHAPE = (28, 28, 1)  # height, width, channels: uint8 grey levels 0..255
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}
