"""`python -m kerastl.export RUN_DIR`: a run's model as SavedModel and LiteRT files, proven on the test set.

Writes RUN_DIR/export/:

    saved_model/            serving signatures `serving_default` (float32 pixels) and `serve_uint8`,
                            on the trained model's own input (grey 28x28x1 for MNIST)
    model_float32.tflite    LiteRT, float32
    model_float16.tflite    weights stored as float16
    model_dynamic.tflite    weights int8, activations quantized on the fly (dynamic range)
    model_int8.tflite       full integer, calibrated on a sample of the train split; uint8 (or int8) in/out
    labels.txt              one class name per line, in output order
    export_report.json      size, test accuracy, change vs Keras, agreement and latency of each file,
                            and each LiteRT file's results in MediaPipe's ImageClassifier
    MODEL_CARD.md           what the model does and how well, its limits, licences, app examples

Every model takes raw pixels 0..255 (preprocessing is inside it) and returns class probabilities.
The LiteRT files are app-ready: RGB input [1, H, W, 3] (a grey-trained model converts it to grey
inside), TFLite metadata with the labels packed in, accepted by MediaPipe Tasks. Keras `.keras`
files are backend-neutral, so a model trained under JAX or PyTorch is loaded here under the
TensorFlow backend, the one whose `model.export` writes both formats.

    job.py                 export_run: read the run, convert, describe, check, move into place
    convert.py             SavedModel and LiteRT conversion; the RGB graph of the LiteRT files
    metadata.py            TFLite metadata and the packed labels file, written with `flatbuffers`
    parity.py              every file run on the test set against the Keras model; the report table
    mediapipe_check.py     every LiteRT file run in MediaPipe's ImageClassifier, as an app runs it
    model_card.py          MODEL_CARD.md, and the facts it shares with the metadata
    folder.py              the export folder appears whole or not at all
    tensorflow_process.py  export_run called from a JAX or PyTorch process runs in a TensorFlow one
    cli.py                 the command line
"""

from kerastl.errors import ExportFailed
from kerastl.export.job import export_run
from kerastl.export.parity import flagged, format_table

__all__ = ["ExportFailed", "export_run", "flagged", "format_table"]
