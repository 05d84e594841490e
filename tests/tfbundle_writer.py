"""Test helper: write a small but valid TensorFlow tensor bundle (``.index`` + ``.data-00000-of-00001``).

Written from the format description (LevelDB table with prefix-compressed keys, restart
points, per-block CRC trailers, a footer with two BlockHandles and the magic number; entries
are serialized ``BundleEntryProto`` messages) so that the reader can be tested without
TensorFlow and without the musicnn wheel. Not a test module itself.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

from tuneseek.embed.tfbundle import TABLE_MAGIC, crc32c, mask_crc

DT_CODES = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 9}


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def field_bytes(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def field_fixed32(field: int, value: int) -> bytes:
    return varint(field << 3 | 5) + struct.pack("<I", value)


def entry_proto(arr: np.ndarray, offset: int, size: int, crc: int, shape=None, dtype_code=None) -> bytes:
    shape = arr.shape if shape is None else shape
    dims = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)
    msg = field_varint(1, DT_CODES[arr.dtype] if dtype_code is None else dtype_code)
    msg += field_bytes(2, dims)
    if offset:
        msg += field_varint(4, offset)
    msg += field_varint(5, size)
    msg += field_fixed32(6, mask_crc(crc))
    return msg


def header_proto(num_shards: int = 1) -> bytes:
    return field_varint(1, num_shards) + field_bytes(3, field_varint(1, 1))  # version {producer: 1}


def block(entries: list[tuple[bytes, bytes]], restart_interval: int = 4) -> bytes:
    out = bytearray()
    restarts = []
    prev = b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        prev = key
    if not restarts:
        restarts = [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def with_trailer(contents: bytes) -> bytes:
    return contents + b"\x00" + struct.pack("<I", mask_crc(crc32c(contents + b"\x00")))


def bundle_bytes(tensors: dict[str, np.ndarray], entries_per_block: int = 5, overrides=None) -> tuple[bytes, bytes]:
    """``(index bytes, data bytes)`` of a bundle holding ``tensors``.

    ``overrides`` maps a tensor name to keyword arguments of :func:`entry_proto` (e.g. a
    wrong ``shape``), to build deliberately inconsistent bundles.
    """
    overrides = overrides or {}
    data = bytearray()
    items: list[tuple[bytes, bytes]] = [(b"", header_proto())]
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], order="C")  # (ascontiguousarray would make scalars 1-D)
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        items.append((name.encode(), entry_proto(arr, len(data), len(raw), crc32c(raw), **overrides.get(name, {}))))
        data += raw
    index = bytearray()
    index_entries = []
    for i in range(0, len(items), entries_per_block):
        part = items[i : i + entries_per_block]
        contents = block(part)
        handle = varint(len(index)) + varint(len(contents))
        index += with_trailer(contents)
        index_entries.append((part[-1][0], handle))  # the block's last key is a valid separator
    meta = block([])
    meta_handle = varint(len(index)) + varint(len(meta))
    index += with_trailer(meta)
    idx = block(index_entries, restart_interval=1)
    idx_handle = varint(len(index)) + varint(len(idx))
    index += with_trailer(idx)
    footer = (meta_handle + idx_handle).ljust(40, b"\x00") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(index + footer), bytes(data)


def write_bundle(prefix: str, tensors: dict[str, np.ndarray], **kw) -> None:
    """Write ``PREFIX.index`` and ``PREFIX.data-00000-of-00001``."""
    index, data = bundle_bytes(tensors, **kw)
    with open(prefix + ".index", "wb") as f:
        f.write(index)
    with open(prefix + ".data-00000-of-00001", "wb") as f:
        f.write(data)


def musicnn_tf_tensors(seed: int = 0, num_classes: int = 50) -> dict[str, np.ndarray]:
    """Random tensors with the names and TensorFlow layouts of a musicnn checkpoint, plus
    Adam slots and a step counter as the real checkpoints have."""
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {}

    def bn(name: str, c: int) -> None:
        t[f"{name}/gamma"] = rng.uniform(-1.5, 1.5, c).astype(np.float32)  # some negative scales
        t[f"{name}/beta"] = rng.normal(0, 0.1, c).astype(np.float32)
        t[f"{name}/moving_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        t[f"{name}/moving_variance"] = rng.uniform(0.5, 2, c).astype(np.float32)

    def conv(name: str, shape: tuple[int, ...]) -> None:
        fan_in = int(np.prod(shape[:-1]))
        t[f"{name}/kernel"] = (rng.normal(0, 1, shape) / np.sqrt(fan_in)).astype(np.float32)
        t[f"{name}/bias"] = rng.normal(0, 0.05, shape[-1]).astype(np.float32)

    bn("batch_normalization", 1)
    shapes = [
        (7, 38, 1, 204),
        (7, 67, 1, 204),
        (128, 1, 1, 51),
        (64, 1, 1, 51),
        (32, 1, 1, 51),
        (7, 561, 1, 64),
        (7, 64, 1, 64),
        (7, 64, 1, 64),
    ]
    for i, shape in enumerate(shapes):
        conv("conv2d" if i == 0 else f"conv2d_{i}", shape)
        bn(f"batch_normalization_{i + 1}", shape[-1])
    bn("batch_normalization_9", 1506)
    conv("dense", (1506, 200))
    bn("batch_normalization_10", 200)
    conv("dense_1", (200, num_classes))
    t["dense/kernel/Adam"] = np.zeros((1506, 200), np.float32)
    t["dense/kernel/Adam_1"] = np.zeros((1506, 200), np.float32)
    t["beta1_power"] = np.array(0.9, np.float32)
    t["global_step"] = np.array(1234, np.int64)
    return t


def fake_wheel(
    tensors: dict[str, np.ndarray] | None, prefixes=("musicnn/MTT_musicnn/", "musicnn/MSD_musicnn/"), **kw
) -> bytes:
    """The bytes of a zip laid out like the musicnn wheel, one checkpoint per prefix."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("musicnn/__init__.py", "")
        if tensors is not None:
            index, data = bundle_bytes(tensors, **kw)
            for prefix in prefixes:
                zf.writestr(prefix + ".index", index)
                zf.writestr(prefix + ".data-00000-of-00001", data)
    return buf.getvalue()
