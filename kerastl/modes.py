"""The modes of `python -m kerastl.fit`, each declared once: what it trains, in which stages, and
which config keys set each stage's epochs and learning rate.

Everything that asks "does this mode have a backbone?", "which stages train?", "which key holds the
fine-tuning rate?" reads these records (the schedule sized to the data, the learning-rate finder,
the study, explain, the figures), so a new mode is one record here plus its training in kerastl.train.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage that trains: its name (in history.csv, metrics.json and the resume state) and the
    config keys of its epochs and learning rate."""

    name: str
    epochs_key: str = "epochs"
    lr_key: str = "lr"
    share_of_min_steps: float = 1.0  # of `min_steps` the schedule sized to small data gives it (kerastl.sizing)


@dataclass(frozen=True)
class Mode:
    name: str
    summary: str  # one line, for --help and the README's table
    stages: tuple[Stage, ...]
    backbone: bool = False  # builds a backbone (kerastl.backbones): input size, backbone and weights apply
    transfers: bool = False  # starts from pretrained backbone weights and gives them a new head
    trains_backbone: bool = False  # some stage changes the backbone's weights

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)


# A head trained before its backbone is unfrozen: a quarter of the small-data steps settle it.
HEAD = Stage("head", epochs_key="head_epochs", share_of_min_steps=0.25)
FINETUNE = Stage("finetune", lr_key="finetune_lr")

MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("mlp", "784-512-512-10 with dropout, from scratch", (Stage("train"),)),
        Mode("cnn", "three conv/batch-norm layers and a dense layer, from scratch", (Stage("train"),)),
        Mode("feature", "a frozen ImageNet backbone's features, computed once; a new head trains on them",
             (Stage("head"),), backbone=True, transfers=True),
        Mode("finetune", "stage head: a new head on the frozen backbone; stage finetune: the whole backbone at a lower rate",
             (HEAD, FINETUNE), backbone=True, transfers=True, trains_backbone=True),
        Mode("partial", "like finetune, but only the top --unfreeze N blocks train in stage finetune",
             (HEAD, FINETUNE), backbone=True, transfers=True, trains_backbone=True),
        Mode("pretrain", "a backbone from scratch on another dataset, saved for --weights of a later transfer run",
             (Stage("pretrain"),), backbone=True, trains_backbone=True),
    )
}
BACKBONE_MODES = tuple(name for name, mode in MODES.items() if mode.backbone)
TRANSFER_MODES = tuple(name for name, mode in MODES.items() if mode.transfers)  # a pretrained backbone and a new head
