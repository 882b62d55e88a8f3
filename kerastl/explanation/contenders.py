"""The backbones an explanation compares, all built at the same input size behind the same pixel
layers: ImageNet's weights, random weights (batch norm re-estimated on the probe's training images)
and, given a fine-tuning run, the run's backbone."""

from __future__ import annotations


import keras
import numpy as np

from kerastl.backbones import backbone_spec, build_backbone
from kerastl.errors import UserError, first_line
from kerastl.explanation.probe import BATCH_NORM_BATCH, FINE_TUNED, IMAGENET, RANDOM, reestimate_batch_norm
from kerastl.preprocessing import pixel_adapter, pixels_input
from kerastl.log import Log



def adapter_model(backbone: str, size: int, image_shape: tuple[int, int, int]) -> keras.Model:
    """Raw pixels -> the backbone's input: rescaled, resized, grey tiled to RGB, normalised, as in
    every kerastl transfer model (kerastl.models.build_transfer_model)."""
    spec = backbone_spec(backbone)
    inputs = pixels_input(image_shape)
    x = pixel_adapter(inputs, size, rgb=image_shape[-1] == 1, mean=spec.mean, std=spec.std)
    return keras.Model(inputs, x, name="pixels_to_backbone")


def build_contenders(job, adapter: keras.Model, x_train: np.ndarray, log: Log) -> dict[str, keras.Model]:
    """{weights name: backbone}, in the order they are drawn."""
    found = {IMAGENET: build_backbone(job.backbone, job.img_size, "imagenet", log=log)}
    keras.utils.set_random_seed(job.seed)
    random = build_backbone(job.backbone, job.img_size, "none", log=lambda _: None)
    batch = adapter.predict(x_train[:BATCH_NORM_BATCH], batch_size=BATCH_NORM_BATCH, verbose=0)
    layers = reestimate_batch_norm(random, batch)
    log(f"explain: random weights: batch-norm statistics of {layers} layers re-estimated on {len(batch)} training images")
    found[RANDOM] = random
    if job.fine_tuned:
        found[FINE_TUNED] = fine_tuned_backbone(job)
    return found


def run_backbone(model: keras.Model, backbone: str) -> keras.Model:
    """The backbone inside a kerastl transfer model (the one nested model among its layers)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise UserError(f"the run's model holds {len(nested)} nested models, expected one {backbone} backbone")
    return nested[0]


def fine_tuned_backbone(job) -> keras.Model:
    """The run's backbone weights in a fresh backbone of the same architecture."""
    trained = run_backbone(job.run.model, job.backbone)
    fresh = build_backbone(job.backbone, job.img_size, "none", log=lambda _: None)
    try:
        fresh.set_weights(trained.get_weights())
    except ValueError as exc:
        raise UserError(f"the run's backbone does not match {job.backbone} at {job.img_size} px ({first_line(exc)})") from None
    return fresh
