"""MODEL_CARD.md beside the exported files, in the spirit of Mitchell et al. 2019 ("Model Cards for
Model Reporting") and Hugging Face's model cards: what the model does, its input contract, how well
each file classifies (every number from the parity report), its data, training recipe, intended
use and limits, licences, and how to call it from Python, Android, iOS and the web.

`model_facts` gathers what the card and the TFLite metadata both say about the model, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from kerastl import runs
from kerastl.backbones import backbone_spec
from kerastl.data.datasets import DATASETS, GREY_WEIGHTS
from kerastl.export.convert import tflite_name
from kerastl.export.parity import GATED_LATENCY, REPORT, human_size
from kerastl.modes import BACKBONE_MODES
from kerastl.text import percent

MODEL_CARD = "MODEL_CARD.md"


@dataclass(frozen=True)
class ModelFacts:
    """What the model is, for people (the card) and for app runtimes (the metadata)."""
    name: str  # e.g. "kerastl cnn, mnist"
    subject: str  # what it classifies, e.g. "handwritten digits (MNIST)"
    version: str  # the run folder's name
    author: str
    classes: list[str]
    image_shape: tuple[int, int, int]  # what the trained model takes; the LiteRT files take RGB at this size
    data_licence: str
    weights: str  # where the weights started from, with their licence
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def grey(self) -> bool:
        return self.image_shape[2] == 1

    @property
    def licence(self) -> str:
        return f"Weights: {self.weights}. Training images: {self.data_licence}."

    @property
    def description(self) -> str:
        height, width, _ = self.image_shape
        grey = " (converted to grey inside the model, with PIL's weights)" if self.grey else ""
        return (f"Classifies {self.subject} into {len(self.classes)} classes. Input: an RGB picture{grey}, "
                f"which the app runtime resizes to {height}x{width}; pixel values 0..255. "
                "Output: one probability per class. Trained with kerastl.")


def model_facts(run_dir: Path, config: dict[str, Any], metrics: dict[str, Any], labels: list[str],
                image_shape: tuple[int, int, int]) -> ModelFacts:
    """The facts of a run folder's model, from its config.yaml and metrics.json."""
    dataset = config["dataset"]
    if dataset not in DATASETS:
        subject = f"images like those of the folder {Path(dataset).name}"
        data_licence = f"those of the images in {dataset} (not known to kerastl)"
    else:
        subject, data_licence = DATASETS[dataset].subject, DATASETS[dataset].licence
    return ModelFacts(
        name=f"kerastl {config['mode']}, {Path(dataset).name}", subject=subject, version=run_dir.name,
        author=f"trained with kerastl {_kerastl_version()}", classes=list(labels), image_shape=image_shape,
        data_licence=data_licence, weights=_weights(config), config=config, metrics=metrics,
    )


def _weights(config: dict[str, Any]) -> str:
    if config["mode"] not in BACKBONE_MODES:
        return "trained from random initialisation by this run"
    backbone, weights = config["backbone"], config["weights"]
    if weights in (None, "none"):
        return f"{backbone} trained from random initialisation by this run"
    if weights != "imagenet":
        return f"{backbone} started from the weights in {weights} (their licence is not known to kerastl)"
    try:

        licence = backbone_spec(backbone).imagenet_licence or "not known to kerastl"
    except Exception:  # a keras-hub preset that cannot be opened now: the card is still written
        licence = "not known to kerastl"
    return f"{backbone} fine-tuned from ImageNet weights, licence: {licence}"


def _kerastl_version() -> str:
    try:
        return version("kerastl")
    except PackageNotFoundError:
        return "(not installed)"


# The card


def app_file(report: dict[str, Any]) -> str | None:
    """The file to ship: the full-integer one if it passed every check (the smallest and fastest on
    phones), else the smallest that did, else the smallest LiteRT file."""
    files = [row for row in report["rows"] if row["file"].endswith(".tflite")]
    good = [row for row in files if not row["flagged"] and (row.get("mediapipe") or {}).get("refused") is None]
    chosen = min(good or files, key=lambda row: (row["file"] != tflite_name("int8"), row["size_bytes"]), default=None)
    return chosen["file"] if chosen else None


def write_model_card(folder: Path, facts: ModelFacts, report: dict[str, Any]) -> None:
    (folder / MODEL_CARD).write_text(model_card(facts, report))


def model_card(facts: ModelFacts, report: dict[str, Any]) -> str:
    height, width, _ = facts.image_shape
    ship = app_file(report)
    sections = [
        f"# {facts.name}\n\n{facts.description}\n\nRun `{facts.version}`, {facts.author}. Every number below comes "
        f"from this export's parity check (`{REPORT}`) on {report['test_images']:,} test images.",
        _contract(facts, report, height, width),
        _accuracy(report),
        _not_sure(facts, report),
        _per_class(facts, report),
        _data(facts, report),
        _training(facts),
        _use_and_limits(facts, height, width),
        f"## Licences\n\n- {facts.licence}\n- The code that trained and exported it: kerastl, Apache-2.0.",
        _usage(ship, facts) if ship else "## Use it\n\nThis export has no LiteRT file; export with `--formats tflite`.",
    ]
    return "\n\n".join(sections) + "\n"


def _contract(facts: ModelFacts, report: dict[str, Any], height: int, width: int) -> str:

    io = report.get("int8_io")
    int8 = f"`{io}` for the full-integer file (`--int8-io {io}`" + (", which MediaPipe refuses)" if io == "int8" else ")")
    grey = ("The model was trained on grey images: it converts RGB to grey itself with PIL's weights "
            f"{GREY_WEIGHTS}, as `kerastl.predict` converts pictures. " if facts.grey else "")
    return (
        "## Input and output\n\n"
        f"- Input: one RGB picture `[1, {height}, {width}, 3]`, pixel values 0..255: `float32` for the float files"
        + (f", {int8}" if io else "") + ". An app passes any picture: MediaPipe resizes it to "
        f"{height}x{width}. {grey}Normalisation is inside the model, so the metadata says mean 0, std 1.\n"
        f"- Output: `[1, {len(facts.classes)}]` class probabilities, in the order of `{runs.LABELS}`.\n"
        f"- TFLite metadata in every `.tflite` file: name, description, version, author, licence, the input as an "
        f"RGB image (normalisation mean 0 / std 1, values 0..255), the output as probabilities with `{runs.LABELS}` "
        "packed inside as the TENSOR_AXIS_LABELS file, so MediaPipe returns the class names.\n"
        "- The SavedModel takes the trained model's own input "
        f"(`[batch, {height}, {width}, {facts.image_shape[2]}]`), for servers and Python."
    )


def _accuracy(report: dict[str, Any]) -> str:
    mediapipe = report.get("mediapipe") or {}
    lines = [
        "## Accuracy, size and latency",
        "",
        "| file | size | accuracy (LiteRT) | change vs Keras | agreement with Keras | latency | MediaPipe accuracy | MediaPipe agreement |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        app = row.get("mediapipe")
        if app and app["refused"]:
            in_app = f"refused: {app['refused']} | -"
        elif app:
            in_app = f"{percent(app['accuracy'])} | {percent(app['agreement'])}"
        else:
            in_app = "not checked | -" if row["file"].endswith(".tflite") else "- | -"
        lines.append(
            f"| {row['file']} | {human_size(row['size_bytes'])} | {percent(row['accuracy'])} | {row['delta_pp']:+.2f} pp | "
            f"{percent(row['agreement'])} | {row['latency_ms']:.3f} ms | {in_app} |" + (" **DROP**" if row["flagged"] else "")
        )
    threads = report.get("interpreter_threads")
    notes = [f"Latency: median of {report['latency_repeats']} single-image calls on the export machine "
             f"({report.get('interpreter') or 'Keras'}" + (f", interpreter threads: {threads})" if threads else ")")
             + (GATED_LATENCY if report.get("abstain") else "") + "."]
    if mediapipe.get("version"):
        notes.append(f"MediaPipe: `mediapipe` {mediapipe['version']}'s ImageClassifier, given the test images as RGB "
                     f"pictures {mediapipe['picture_scale']}x the input size (it resizes them itself).")
    elif mediapipe.get("not_checked"):
        notes.append(f"MediaPipe: not checked ({mediapipe['not_checked']}).")
    return "\n".join(lines) + "\n\n" + " ".join(notes)


def _per_class(facts: ModelFacts, report: dict[str, Any]) -> str:
    rows = [row for row in report["rows"] if row["artifact"] == "keras" or row["file"].endswith(".tflite")]
    header = "| class | " + " | ".join(row["file"] for row in rows) + " |"
    lines = ["## Accuracy per class", "", header, "|" + " --- |" * (len(rows) + 1)]
    for c, name in enumerate(facts.classes):
        lines.append(f"| {name} | " + " | ".join(percent(row["per_class_accuracy"][c]) for row in rows) + " |")
    return "\n".join(lines)


def _data(facts: ModelFacts, report: dict[str, Any]) -> str:
    m = facts.metrics
    split = (f"{m['train_images']:,} training, {m['validation_images']:,} validation and {m['test_images']:,} test images"
             if "train_images" in m else "the split is not recorded")
    checked = "" if report["test_images"] == m.get("test_images") else f" (the export checked the first {report['test_images']:,})"
    kind = "grey" if facts.grey else "colour"
    return (f"## Data\n\n`{facts.config['dataset']}`: {split}{checked}. Classes: {', '.join(facts.classes)}. "
            f"Trained on {facts.image_shape[0]}x{facts.image_shape[1]} {kind} images.")


def _training(facts: ModelFacts) -> str:
    c, m = facts.config, facts.metrics
    recipe = [f"mode `{c['mode']}`", facts.weights]
    if m.get("backbone"):
        recipe.append(f"backbone `{m['backbone']}` at {m['img_size']} px")
    if m.get("epochs_run"):
        recipe.append("epochs " + ", ".join(f"{stage}: {n}" for stage, n in m["epochs_run"].items()))
    if "batch_size" in c:
        rates = f"learning rate {c['lr']}" + (f", fine-tuning {c['finetune_lr']}" if m.get("backbone") else "")
        recipe.append(f"batch size {c['batch_size']}, {rates} ({c['lr_schedule']} schedule)")
    if c.get("augment"):
        recipe.append("augmentation (shifts, rotations, zooms)")
    if c.get("label_smoothing"):
        recipe.append(f"label smoothing {c['label_smoothing']}")
    if m.get("backend"):
        recipe.append(f"Keras on {m['backend']}" + (f", {m['device']}" if m.get("device") else ""))
    if m.get("test_accuracy") is not None:
        recipe.append(f"test accuracy after training {percent(m['test_accuracy'])}" + _data_health(m))
    return f"## Training\n\n{'; '.join(recipe)}. The full settings are in the run's `{runs.CONFIG}`."


def _data_health(m: dict[str, Any]) -> str:
    """What fit's check before training found (image folders): copies of test pictures in train, the floor."""
    notes = []
    if m.get("copies_in_train") is not None:
        copies = m["copies_in_train"]
        notes.append(f"{copies} validation/test pictures have a copy in train" + (
            f", {percent(m['test_accuracy_without_copies'])} without them (`python -m kerastl.inspect` lists them)"
            if m.get("test_accuracy_without_copies") is not None else ""))
    if m.get("pixel_floor_accuracy") is not None:
        notes.append(f"a linear model on the raw pixels scores {percent(m['pixel_floor_accuracy'])}")
    return f" ({'; '.join(notes)})" if notes else ""


def _use_and_limits(facts: ModelFacts, height: int, width: int) -> str:

    dataset = facts.config["dataset"]
    if dataset in DATASETS:
        limits = DATASETS[dataset].limits
    else:
        limits = ("The model knows the pictures of its training folder only; pictures unlike them (other subjects, "
                  "lighting, framing) get answers that can be confidently wrong.")
    answers = ("Below its threshold the file gives no class (see \"When it says not sure\"); the detector has seen "
               "no outside pictures, so some kinds it was never measured on may still get a class." if _threshold(facts) is not None
               else "The model always answers with one of its classes: it cannot say 'none of these', so a picture far "
               "from the training data still gets a class.")
    return (f"## Intended use and limits\n\nFor classifying {facts.subject} into the {len(facts.classes)} classes above, "
            f"on a device or in a browser. {limits} {answers} Pictures are resized to "
            f"{height}x{width}, so fine detail is lost.")


def _threshold(facts: ModelFacts) -> float | None:
    from kerastl.confidence import threshold

    return threshold.of_run(facts.metrics)


def _few_validation(metrics: dict[str, Any], keep: float) -> str:
    """A warning when the validation split is too small for the share kept to mean anything."""
    count = metrics.get("validation_images")
    if not count or count * (1 - keep / 100) >= 1:
        return ""
    return (f" (of only {count:,}: that keeps all of them, so the threshold is their lowest score, and the share of new "
            "pictures of the classes answered is known only roughly; more validation pictures make it firmer)")


def _not_sure(facts: ModelFacts, report: dict[str, Any]) -> str:
    """What the threshold in the files means for an app, with what was measured and its limits."""
    chosen = _threshold(facts)
    if chosen is None:
        return ("## When it says not sure\n\nNever: the run had no validation split to choose a threshold on, so the "
                "files carry none and every picture gets a class.")
    c = facts.metrics["confidence"]
    keep = 100 * c["keep_in_distribution"]
    lines = [
        "## When it says not sure",
        "",
        f"Every `.tflite` file carries a default score threshold of **{chosen:.4f}** in its metadata "
        "(`ScoreThresholdingOptions` on the output). MediaPipe's ImageClassifier and the TFLite Task Library apply it "
        "with their default options: a picture whose top score is below it gets **no class** (an empty list), which "
        "an app shows as \"not sure\". An app may set its own `score_threshold` instead (MediaPipe reads 0 as unset).",
        "",
        f"The scores are the model's probabilities made honest on the validation split (temperature "
        f"{c['temperature']:.3g}; test calibration error {100 * c.get('test_ece_before', 0):.2f} % -> "
        f"{100 * c.get('test_ece_after', 0):.2f} %), multiplied by how close the picture lies to one of the classes in "
        f"the model's features (a Gaussian per class, fitted on training pictures). The threshold keeps {keep:g} % of "
        f"the validation pictures answered{_few_validation(facts.metrics, keep)}; on the test pictures it answered "
        f"{100 * c.get('test_answered', 0):.2f} %, and {100 * c.get('test_answered_accuracy', 0):.2f} % of those answers were right.",
    ]
    abstain = report.get("abstain")
    if abstain:
        names = [n for n in abstain["pictures"] if n != "test"]
        lines += ["", "Share answered, per file (pictures of no class: " + ", ".join(names) + "):", "",
                  "| file | runtime | test | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * (len(names) + 1)]
        for row in abstain["rows"]:
            lines.append(f"| `{row['file']}` | LiteRT | {100 * row['litert']['test']['answered']:.1f} % | " + " | ".join(
                f"{100 * row['litert'][n]['answered']:.1f} %" for n in names) + " |")
            if "mediapipe" in row:
                lines.append(f"| | MediaPipe | {100 * row['mediapipe']['test']:.1f} % | " + " | ".join(
                    f"{100 * row['mediapipe'][n]:.1f} %" for n in names) + " |")
        lines += ["", f"MediaPipe: the first {abstain['mediapipe_pictures']} pictures of each set."]
    lines += ["", "Limits: the detector was fitted without any outside picture and measured only on the sets above. "
              "Pictures close to the classes (a letter drawn like a digit, a new kind of object in the same style) "
              "are the hardest and may still get a class; pictures of the classes taken unlike the training ones "
              "(other lighting, framing, inverted colours) may get \"not sure\". Lower the threshold to answer more, "
              "raise it to answer less."]
    return "\n".join(lines)


def _usage(ship: str, facts: ModelFacts) -> str:
    stem = ship.removesuffix(".tflite")
    return f"""## Use it

`{ship}` is the file to ship (the full-integer file when it passed every check above, else the
smallest that did). Python, with
`pip install mediapipe pillow` (this example is run by kerastl's tests):

```python
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision
from PIL import Image

picture = np.asarray(Image.open("picture.png").convert("RGB"))  # MediaPipe takes RGB; it fails on a grey image
options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path="{ship}"), max_results=3)
with vision.ImageClassifier.create_from_options(options) as classifier:
    result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=picture))
    for category in result.classifications[0].categories:
        print(category.category_name, round(category.score, 3))
```

Android (Kotlin, `com.google.mediapipe:tasks-vision`; put the file in `app/src/main/assets/`):

```kotlin
val options = ImageClassifier.ImageClassifierOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("{ship}").build())
    .setMaxResults(3)
    .build()
val classifier = ImageClassifier.createFromOptions(context, options)
val result = classifier.classify(BitmapImageBuilder(bitmap).build())
val top = result.classificationResult().classifications()[0].categories()[0]
Log.i("classifier", "${{top.categoryName()}} ${{top.score()}}")
```

iOS (Swift, pod `MediaPipeTasksVision`; add the file to the app bundle):

```swift
import MediaPipeTasksVision

let options = ImageClassifierOptions()
options.baseOptions.modelAssetPath = Bundle.main.path(forResource: "{stem}", ofType: "tflite")!
options.maxResults = 3
let classifier = try ImageClassifier(options: options)
let result = try classifier.classify(image: try MPImage(uiImage: uiImage))
if let top = result.classificationResult.classifications.first?.categories.first {{
    print(top.categoryName ?? "", top.score)
}}
```

Web (JavaScript, npm `@mediapipe/tasks-vision`; serve the file beside the page):

```javascript
import {{ FilesetResolver, ImageClassifier }} from "@mediapipe/tasks-vision";

const vision = await FilesetResolver.forVisionTasks("https://cdn.jsdelivr.net/npm/@mediapipe/tasks-vision/wasm");
const classifier = await ImageClassifier.createFromOptions(vision, {{
  baseOptions: {{ modelAssetPath: "{ship}" }},
  maxResults: 3,
}});
const top = classifier.classify(document.querySelector("img")).classifications[0].categories[0];
console.log(top.categoryName, top.score);
```

The Kotlin, Swift and JavaScript examples follow MediaPipe's documented API and are not run by kerastl's tests."""

