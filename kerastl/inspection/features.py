"""What the pretrained backbone sees in each picture: EfficientNet-Lite0's ImageNet features (the
weights install with kerastl, so this works offline), global-average-pooled, one vector a picture.
They feed the near-duplicate search and the out-of-fold heads behind the label check and the floor."""

from __future__ import annotations

import numpy as np

from kerastl.data.datasets import DataInfo
from kerastl.log import Log

BACKBONE = "efficientnet_lite0"
FEATURE_SIDE = 64  # the backbone's input side: measured on the 2-core CPU (see docs/inspect.md)
BATCH = 256


def backbone_features(thumbs: np.ndarray, log: Log = print) -> np.ndarray:
    """float32 [n, 1280]: the frozen backbone's pooled features of uint8 pictures [n, h, w, c]."""
    from kerastl.models import build_transfer_model  # imports Keras: deferred so `--help` stays instant

    data = DataInfo("inspect", ("-", "-"), tuple(thumbs.shape[1:]))
    model = build_transfer_model(BACKBONE, FEATURE_SIDE, data=data, log=log).features
    return np.asarray(model.predict(thumbs, batch_size=BATCH, verbose=0), "float32")
