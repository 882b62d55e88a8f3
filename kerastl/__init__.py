"""kerastl: transfer learning on small images with Keras 3."""

from kerastl import quiet  # noqa: F401  (first: it must run before anything imports TensorFlow)
