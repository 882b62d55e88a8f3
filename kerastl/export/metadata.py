"""TFLite metadata for an image classifier, and its labels file packed into the model.

App runtimes (MediaPipe Tasks' ImageClassifier, the TFLite Task Library, Android Studio's model
import) read a `.tflite` file's metadata to learn what the input is (an RGB image, how its pixels
are normalised) and what the output means (class probabilities, named by an associated labels
file). The metadata is a FlatBuffer with TFLite's `metadata_schema.fbs` (file identifier "M001"),
stored in the model's buffer named "TFLITE_METADATA"; the associated files are a ZIP archive
appended to the model, as TFLite Support's populator writes them.

This module writes just the tables an image classifier needs with the `flatbuffers` runtime (a
TensorFlow dependency), so nothing else has to install: the maintained writers do not install
beside TensorFlow 2.21 (see the README, "Use it in an app"). Slot numbers follow the order of the
fields in `metadata_schema.fbs` (schema 1.5.0); every field used here exists since schema 1.0.0.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METADATA_BUFFER = "TFLITE_METADATA"  # the model metadata entry app runtimes look up
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"

# Enum and union values of metadata_schema.fbs
COLOR_SPACE_RGB = 1
FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2  # union ContentProperties
NORMALIZATION_OPTIONS, SCORE_THRESHOLDING_OPTIONS = 1, 3  # union ProcessUnitOptions
TENSOR_AXIS_LABELS = 2  # enum AssociatedFileType


@dataclass(frozen=True)
class ClassifierMetadata:
    """What an app needs to know about an image classifier that takes RGB pixels 0..255."""

    name: str
    description: str
    version: str
    author: str
    licence: str
    height: int
    width: int
    labels_file: str  # name of the associated TENSOR_AXIS_LABELS file, one class name per line
    num_classes: int
    mean: float = 0.0  # NormalizationOptions: the model computes (pixel - mean) / std itself, so 0 and 1
    std: float = 1.0
    pixel_range: tuple[float, float] = (0.0, 255.0)
    score_threshold: float | None = None  # ScoreThresholdingOptions: scores below it are not reported (None: none)


class MetadataError(RuntimeError):
    """The metadata could not be written into a model file."""


def metadata_flatbuffer(meta: ClassifierMetadata) -> bytes:
    """The ModelMetadata FlatBuffer of one subgraph: an RGB image in, probabilities out."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    low, high = ((v - meta.mean) / meta.std for v in meta.pixel_range)

    # Input: an RGB image, normalised with mean/std, values low..high after normalisation
    image_size = _table(b, ("uint32", meta.width), ("uint32", meta.height))
    image_properties = _table(b, ("int8", COLOR_SPACE_RGB), ("offset", image_size))
    image_content = _table(b, ("uint8", IMAGE_PROPERTIES), ("offset", image_properties))
    normalization = _table(b, ("offset", _floats(b, [meta.mean])), ("offset", _floats(b, [meta.std])))
    process_unit = _table(b, ("uint8", NORMALIZATION_OPTIONS), ("offset", normalization))
    input_stats = _table(b, ("offset", _floats(b, [high])), ("offset", _floats(b, [low])))
    input_tensor = _table(
        b, ("offset", b.CreateString("image")),
        ("offset", b.CreateString(f"Input image to be classified: RGB, {meta.height}x{meta.width}, pixel values "
                                  f"{meta.pixel_range[0]:g}..{meta.pixel_range[1]:g}.")),
        None, ("offset", image_content), ("offset", _offsets(b, [process_unit])), ("offset", input_stats),
    )

    # Output: one probability per class, named by the labels file
    labels = _table(
        b, ("offset", b.CreateString(meta.labels_file)),
        ("offset", b.CreateString("Labels for categories that the model can recognize.")), ("int8", TENSOR_AXIS_LABELS),
    )
    feature_content = _table(b, ("uint8", FEATURE_PROPERTIES), ("offset", _table(b)))
    output_stats = _table(b, ("offset", _floats(b, [1.0])), ("offset", _floats(b, [0.0])))
    output_units = None
    if meta.score_threshold is not None:  # the default threshold of MediaPipe's and the Task Library's classifiers
        thresholding = _table(b, ("float32", meta.score_threshold))
        output_units = ("offset", _offsets(b, [_table(b, ("uint8", SCORE_THRESHOLDING_OPTIONS), ("offset", thresholding))]))
    output_tensor = _table(
        b, ("offset", b.CreateString("probability")),
        ("offset", b.CreateString(f"Probabilities of the {meta.num_classes} labels respectively"
                                  + (", scaled down for pictures unlike every class." if meta.score_threshold is not None else "."))),
        None, ("offset", feature_content), output_units, ("offset", output_stats), ("offset", _offsets(b, [labels])),
    )

    subgraph = _table(b, None, None, ("offset", _offsets(b, [input_tensor])), ("offset", _offsets(b, [output_tensor])))
    strings = [b.CreateString(text) for text in (meta.name, meta.description, meta.version, meta.author, meta.licence)]
    name, description, version, author, licence = strings
    root = _table(
        b, ("offset", name), ("offset", description), ("offset", version), ("offset", _offsets(b, [subgraph])),
        ("offset", author), ("offset", licence), None, ("offset", b.CreateString(MIN_PARSER_VERSION)),
    )
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def write_into_model(path: Path, metadata: bytes, files: dict[str, bytes]) -> None:
    """Store `metadata` as the model's TFLITE_METADATA buffer and append `files` as a ZIP archive
    (uncompressed, as app runtimes read it). Rewrites the file at `path`; MetadataError on failure."""
    try:
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(metadata, np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_BUFFER, len(model.buffers) - 1
        model.metadata = [m for m in (model.metadata or []) if _name(m) != METADATA_BUFFER] + [entry]
        packed = io.BytesIO(flatbuffer_utils.convert_object_to_bytearray(model))
        with zipfile.ZipFile(packed, "a", compression=zipfile.ZIP_STORED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        path.write_bytes(packed.getvalue())
    except Exception as exc:
        raise MetadataError(f"{type(exc).__name__}: {exc}") from exc


def read_metadata(path: Path) -> bytes | None:
    """The TFLITE_METADATA FlatBuffer of a model file, or None if it has none."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    for entry in model.metadata or []:
        if _name(entry) == METADATA_BUFFER:
            return bytes(model.buffers[entry.buffer].data)
    return None


def read_score_threshold(path: Path) -> float | None:
    """The global score threshold of a model file's output tensor (ScoreThresholdingOptions), or None."""
    import flatbuffers
    from flatbuffers.table import Table

    buffer = read_metadata(path)
    if buffer is None:
        return None
    root = Table(bytearray(buffer), flatbuffers.encode.Get(flatbuffers.packer.uoffset, buffer, 0))  # ModelMetadata
    for subgraph in _vector(root, 3):  # ModelMetadata.subgraph_metadata
        for tensor in _vector(subgraph, 3):  # SubGraphMetadata.output_tensor_metadata
            for unit in _vector(tensor, 4):  # TensorMetadata.process_units
                if _scalar(unit, 0, "Uint8Flags") == SCORE_THRESHOLDING_OPTIONS:
                    return float(_scalar(_child(unit, 1), 0, "Float32Flags"))
    return None


def read_packed_files(path: Path) -> dict[str, bytes]:
    """The files packed into a model file (its appended ZIP archive)."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# FlatBuffer building blocks: children are written before the table that points to them


def _table(b, *fields) -> int:
    """A table whose fields, in schema order, are (kind, value) or None for an absent field."""
    b.StartObject(len(fields))
    for slot, field in enumerate(fields):
        if field is None:
            continue
        kind, value = field
        {"offset": b.PrependUOffsetTRelativeSlot, "uint8": b.PrependUint8Slot, "int8": b.PrependInt8Slot,
         "uint32": b.PrependUint32Slot, "float32": b.PrependFloat32Slot}[kind](slot, value, 0)
    return b.EndObject()


# Reading: a table's field `slot` sits at vtable entry 4 + 2 * slot (as the generated readers do it)


def _child(table, slot: int):
    """The table a field points to."""
    from flatbuffers.table import Table

    o = table.Offset(4 + 2 * slot)
    return Table(table.Bytes, table.Indirect(o + table.Pos)) if o else None


def _vector(table, slot: int) -> list:
    """The tables of a vector field (empty if absent)."""
    from flatbuffers.table import Table

    o = table.Offset(4 + 2 * slot)
    if not o:
        return []
    start = table.Vector(o)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(o))]


def _scalar(table, slot: int, flags: str):
    """A scalar field's value (0 if absent, as FlatBuffers omits defaults)."""
    from flatbuffers import number_types

    o = table.Offset(4 + 2 * slot)
    return table.Get(getattr(number_types, flags), o + table.Pos) if o else 0


def _offsets(b, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _floats(b, values: list[float]) -> int:
    return b.CreateNumpyVector(np.asarray(values, np.float32))


def _name(entry) -> str:
    return entry.name.decode() if isinstance(entry.name, bytes) else entry.name
