"""dlib's 128-d face descriptor network, without dlib's slow non-BLAS build.

face_recognition's descriptor is dlib's ResNet (``dlib_face_recognition_resnet_model_v1.dat``).
The prebuilt ``dlib-bin`` wheels are compiled without BLAS, so the network costs ~54 ms per
face on one core. This module reads the *same* weights straight from dlib's own serialized
file and evaluates the *same* network with either

* onnxruntime (preferred when installed): the network is written out as an ONNX graph in
  memory (hand-encoded protobuf, no ``onnx`` package) -- ~2.3 ms/face on one core here; or
* numpy: im2col + one float32 GEMM per convolution on numpy's bundled OpenBLAS -- ~5.7 ms/face.

Nothing is compiled and nothing is cached on disk; loading takes ~15 ms (numpy) / ~75 ms
(onnxruntime, including its session setup). Results match dlib to ~5e-7.

Network (dlib ``examples/dnn_face_recognition_ex.cpp``)::

    loss_metric<fc_no_bias<128, avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

    ares<N>      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    ares_down<N> = relu(avg_pool2x2s2(x) (+) affine(con3x3(relu(affine(con3x3s2(x))))))

Details that matter for matching dlib bit-for-bit-ish (all read from dlib's source and checked
numerically against ``dlib.face_recognition_model_v1``):

* the file stores each convolution's padding (0 for the strided ones, 1 for the 3x3 s1 ones);
  pooling layers store theirs too (all 0);
* ``add_prev`` of tensors of different shapes produces the element-wise *maximum* shape and
  adds over the overlap, i.e. the smaller operand is zero-padded (channels *and* rows/cols:
  in alevel1 the block output is 3x3 but the pooled shortcut is 4x4; in alevel0 1x1 vs 2x2);
* the input layer computes ``(pixel - mean[c]) / 256`` with RGB means (122.782, 117.001,
  104.298) stored in the file;
* ``affine`` is ``gamma * x + beta`` per channel; it is folded into the preceding convolution.

Threads: the app runs one worker process per core, so BLAS must stay single-threaded. Worker
processes should set ``OPENBLAS_NUM_THREADS=1`` (and ``OMP_NUM_THREADS=1``) in the environment
*before numpy is imported*; :func:`limit_blas_threads` does that for the current process when
called before the first numpy import and is a no-op afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

CHIP_SIZE = 150
DESCRIPTOR_SIZE = 128

__all__ = ["FastDescriptor", "DlibNetFormatError", "limit_blas_threads", "load_dlib_net", "CHIP_SIZE"]


def limit_blas_threads(n: int = 1) -> None:
    """Ask BLAS/OpenMP for ``n`` threads. Only effective before numpy is first imported."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


class DlibNetFormatError(ValueError):
    """The file is not the dlib face recognition ResNet this module knows how to run."""


# ---------------------------------------------------------------------------------------------
# dlib serialization (dlib/serialize.h, dlib/dnn/tensor.h)
# ---------------------------------------------------------------------------------------------


class _Reader:
    """Reads dlib's ``serialize()`` stream.

    * integers: one control byte (low nibble = byte count, bit 0x80 = negative) followed by the
      magnitude in little-endian bytes;
    * float/double: a (mantissa int64, exponent int16) pair of such integers;
    * std::string: length integer + bytes;  bool: the character '0' or '1';
    * tensor (version 2): version, num_samples, k, nr, nc, then raw little-endian float32s;
    * alias_tensor: version 1, num_samples, k, nr, nc.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise DlibNetFormatError("unexpected end of file")

    def peek(self) -> int:
        self._need(1)
        return self.data[self.pos]

    def int(self) -> int:
        self._need(1)
        ctrl = self.data[self.pos]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size > 8:
            raise DlibNetFormatError(f"bad integer control byte 0x{ctrl:02x} at {self.pos}")
        self._need(1 + size)
        val = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -val if ctrl & 0x80 else val

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        n = self.int()
        self._need(n)
        s = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return s.decode("ascii")
        except UnicodeDecodeError:
            raise DlibNetFormatError(f"expected a name at {self.pos - n}") from None

    def bool(self) -> bool:
        self._need(1)
        c = self.data[self.pos]
        if c not in (0x30, 0x31):
            raise DlibNetFormatError(f"expected a bool at {self.pos}")
        self.pos += 1
        return c == 0x31

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibNetFormatError(f"unsupported tensor version {version}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        self._need(4 * count)
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos += 4 * count
        return arr

    def alias_tensor(self) -> tuple[int, int, int, int]:
        if self.int() != 1:
            raise DlibNetFormatError("unsupported alias_tensor version")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


def _read_layer(r: _Reader) -> dict:
    """One layer's ``details`` as serialized by dlib/dnn/layers.h."""
    name = r.string()
    if name == "con_4":
        params = r.tensor()
        k, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        filt = r.alias_tensor()
        r.alias_tensor()  # the bias tensor: read past, the forward pass does not use it
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.float()
        flat = params.reshape(-1)
        nfilt = int(np.prod(filt))
        if filt[0] != k or filt[2:] != (nr, nc) or flat.size != nfilt + k:
            raise DlibNetFormatError("inconsistent con_ layer")
        w = flat[:nfilt].reshape(filt)  # (K, C, kh, kw)
        b = flat[nfilt : nfilt + k]
        return dict(type="con", w=w, b=b, stride=(sy, sx), pad=(py, px))
    if name == "affine_":
        params = r.tensor().reshape(-1)
        g = r.alias_tensor()
        r.alias_tensor()
        mode = r.int()
        n = int(np.prod(g))
        if mode != 0 or params.size != 2 * n:  # 0 == CONV_MODE (per channel)
            raise DlibNetFormatError("unsupported affine_ layer")
        return dict(type="affine", gamma=params[:n], beta=params[n:])
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        return dict(type=name[:3] + "_pool", size=(nr, nc), stride=(sy, sx), pad=(py, px))
    if name == "relu_":
        return dict(type="relu")
    if name == "add_prev_":
        return dict(type="add_prev")
    if name == "fc_2":
        num_outputs = r.int()
        num_inputs = r.int()
        params = r.tensor().reshape(-1)
        wshape = r.alias_tensor()
        r.alias_tensor()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        nw = num_inputs * num_outputs
        if wshape[:2] != (num_inputs, num_outputs) or params.size < nw:
            raise DlibNetFormatError("inconsistent fc_ layer")
        w = params[:nw].reshape(num_inputs, num_outputs)
        b = params[nw : nw + num_outputs] if bias_mode == 0 else None
        return dict(type="fc", w=w, b=b)
    raise DlibNetFormatError(f"unsupported layer '{name}'")


def load_dlib_net(data: bytes) -> tuple[dict, list[dict]]:
    """Parse a serialized ``loss_metric<...input_rgb_image_sized<150>>`` net.

    Returns (input layer info, layer details bottom-up). Structural layers (tags, skip) leave
    no details in the stream; only their version numbers appear in the nested header.
    """
    r = _Reader(data)
    r.int()  # add_loss_layer version
    loss = r.string()
    if not loss.startswith("loss_metric"):
        raise DlibNetFormatError(f"unexpected loss layer '{loss}'")
    r.float()  # margin
    r.float()  # distance threshold
    # Nested add_layer / add_tag_layer / add_skip_layer versions, outermost first, until the
    # input layer's name (a string: control byte 0x01, length, then letters).
    while not (r.peek() == 1 and r.data[r.pos + 2 : r.pos + 7] == b"input"):
        r.int()
    in_name = r.string()
    if in_name != "input_rgb_image_sized":
        raise DlibNetFormatError(f"unexpected input layer '{in_name}'")
    means = np.array([r.float() for _ in range(3)], dtype=np.float32)
    rows, cols = r.int(), r.int()
    layers: list[dict] = []
    while r.pos < len(data):
        layers.append(_read_layer(r))
        # add_layer bookkeeping: 3 bools, x_grad, cached_output, params_grad (all empty).
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
        if len(layers) == 1:
            r.int()  # _sample_expansion_factor of the bottom add_layer
    return dict(means=means, rows=rows, cols=cols), layers


# ---------------------------------------------------------------------------------------------
# Compiled plan
# ---------------------------------------------------------------------------------------------


class _Conv:
    __slots__ = ("w", "b", "kh", "kw", "stride", "pad", "relu")

    def __init__(self, con: dict, affine: dict, relu: bool):
        w = con["w"].astype(np.float32)
        k, c, kh, kw = w.shape
        g = affine["gamma"].astype(np.float32)
        # Fold affine (gamma * (Wx + b) + beta) into the convolution. GEMM weight layout
        # (kh*kw*C, K) matching the NHWC im2col below.
        self.w = np.ascontiguousarray((w * g[:, None, None, None]).transpose(2, 3, 1, 0).reshape(kh * kw * c, k))
        self.b = (g * con["b"] + affine["beta"]).astype(np.float32)
        self.kh, self.kw = kh, kw
        self.stride = con["stride"]
        self.pad = con["pad"]
        self.relu = relu

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, h, wd, c = x.shape
        py, px = self.pad
        sy, sx = self.stride
        if py or px:
            xp = np.zeros((n, h + 2 * py, wd + 2 * px, c), np.float32)
            xp[:, py : py + h, px : px + wd] = x
            x = xp
            h += 2 * py
            wd += 2 * px
        oh = (h - self.kh) // sy + 1
        ow = (wd - self.kw) // sx + 1
        if self.kh == 1 and self.kw == 1 and sy == 1 and sx == 1:
            cols = x.reshape(n * oh * ow, c)
        else:
            # im2col as one strided view (n, oh, ow, kh, kw, c) copied in a single C loop;
            # (kw, c) is contiguous in x, so numpy copies runs of kw*c floats.
            x = np.ascontiguousarray(x)
            s_n, s_h, s_w, s_c = x.strides
            view = np.lib.stride_tricks.as_strided(
                x,
                shape=(n, oh, ow, self.kh, self.kw, c),
                strides=(s_n, s_h * sy, s_w * sx, s_h, s_w, s_c),
                writeable=False,
            )
            cols = view.reshape(n * oh * ow, self.kh * self.kw * c)
        y = cols @ self.w
        y += self.b
        if self.relu:
            np.maximum(y, 0, out=y)
        return y.reshape(n, oh, ow, -1)


def _pool(x: np.ndarray, size: tuple[int, int], stride: tuple[int, int], op) -> np.ndarray:
    n, h, w, c = x.shape
    kh, kw = size
    sy, sx = stride
    oh = (h - kh) // sy + 1
    ow = (w - kw) // sx + 1
    out = None
    for dy in range(kh):
        for dx in range(kw):
            v = x[:, dy : dy + sy * (oh - 1) + 1 : sy, dx : dx + sx * (ow - 1) + 1 : sx, :]
            out = v.copy() if out is None else op(out, v, out=out)
    return out


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib add_prev: result has the max of both shapes; each operand is zero-padded."""
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape))
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, s) for s in a.shape)] += a
    out[tuple(slice(0, s) for s in b.shape)] += b
    return out



# ---------------------------------------------------------------------------------------------
# The plan: parsed layers -> a list of folded convolutions and residual blocks
# ---------------------------------------------------------------------------------------------


class _Plan:
    """Backend-independent description of the network with affine layers folded away."""

    def __init__(self, info: dict, layers: list[dict]):
        if (info["rows"], info["cols"]) != (CHIP_SIZE, CHIP_SIZE):
            raise DlibNetFormatError("expected a 150x150 input layer")
        self.scale = np.float32(1.0 / 256.0)
        # (pixel - mean) / 256 == pixel/256 - mean/256 exactly: 256 is a power of two.
        self.offset = (-info["means"] / np.float32(256.0)).astype(np.float32)

        types = [layer["type"] for layer in layers]

        def expect(i: int, *want: str) -> None:
            if tuple(types[i : i + len(want)]) != want:
                raise DlibNetFormatError(f"unexpected layer sequence at {i}: {types[i : i + len(want)]}")

        expect(0, "con", "affine", "relu", "max_pool")
        self.stem = _Conv(layers[0], layers[1], relu=True)
        mp = layers[3]
        if mp["pad"] != (0, 0):
            raise DlibNetFormatError("padded max_pool not supported")
        self.maxpool = (mp["size"], mp["stride"])
        i = 4
        # (conv1 + relu, conv2, shortcut avg pool (size, stride) or None for identity)
        self.blocks: list[tuple[_Conv, _Conv, tuple | None]] = []
        while i < len(layers) and types[i] == "con":
            expect(i, "con", "affine", "relu", "con", "affine")
            c1 = _Conv(layers[i], layers[i + 1], relu=True)
            c2 = _Conv(layers[i + 3], layers[i + 4], relu=False)
            i += 5
            pool = None
            if types[i] == "avg_pool":  # residual_down: shortcut = avg_pool(block input)
                p = layers[i]
                if p["pad"] != (0, 0) or p["size"] == (0, 0):
                    raise DlibNetFormatError("unsupported shortcut pooling")
                pool = (p["size"], p["stride"])
                i += 1
            expect(i, "add_prev", "relu")
            i += 2
            self.blocks.append((c1, c2, pool))
        expect(i, "avg_pool", "fc")
        if layers[i]["size"] != (0, 0):  # avg_pool_everything
            raise DlibNetFormatError("expected avg_pool_everything before fc")
        fc = layers[i + 1]
        self.fc_w = np.ascontiguousarray(fc["w"], dtype=np.float32)
        self.fc_b = None if fc["b"] is None else fc["b"].astype(np.float32)
        if i + 2 != len(layers) or self.fc_w.shape[1] != DESCRIPTOR_SIZE:
            raise DlibNetFormatError("unexpected network tail")

    # -- numpy backend ---------------------------------------------------------------------------

    def forward_numpy(self, chips: np.ndarray) -> np.ndarray:
        x = chips.astype(np.float32) * self.scale + self.offset  # NHWC
        x = self.stem(x)
        x = _pool(x, *self.maxpool, np.maximum)
        for c1, c2, pool in self.blocks:
            y = c2(c1(x))
            if pool is None:
                y += x
            else:
                size, stride = pool
                s = _pool(x, size, stride, np.add)
                s *= np.float32(1.0 / (size[0] * size[1]))
                y = _add_padded(y, s)
            np.maximum(y, 0, out=y)
            x = y
        feat = x.mean(axis=(1, 2), dtype=np.float32)
        out = feat @ self.fc_w
        if self.fc_b is not None:
            out += self.fc_b
        return out

    # -- ONNX export (for onnxruntime) -----------------------------------------------------------

    def to_onnx(self) -> bytes:
        """The same graph as an ONNX ModelProto, encoded by hand (no ``onnx`` package needed).

        Input ``chips``: (N,150,150,3) uint8 RGB; output ``descriptors``: (N,128) float32.
        """
        b = _OnnxBuilder()
        x = b.node("Cast", ["chips"], attrs=[_attr_int("to", 1)])
        x = b.node("Transpose", [x], attrs=[_attr_ints("perm", [0, 3, 1, 2])])
        x = b.node("Mul", [x, b.const(np.array(self.scale, np.float32))])
        x = b.node("Add", [x, b.const(self.offset.reshape(1, 3, 1, 1))])
        x, ch, hw = b.conv(x, self.stem, CHIP_SIZE)
        (kh, kw), (sy, sx) = self.maxpool
        x = b.node("MaxPool", [x], attrs=[_attr_ints("kernel_shape", [kh, kw]), _attr_ints("strides", [sy, sx])])
        hw = (hw - kh) // sy + 1
        for c1, c2, pool in self.blocks:
            y, k, h1 = b.conv(x, c1, hw)
            y, k, h2 = b.conv(y, c2, h1)
            if pool is None:
                s = b.node("Add", [y, x])
            else:
                (kh, kw), (sy, sx) = pool
                p = b.node(
                    "AveragePool", [x], attrs=[_attr_ints("kernel_shape", [kh, kw]), _attr_ints("strides", [sy, sx])]
                )
                hp = (hw - kh) // sy + 1
                # dlib add_prev: zero-pad both operands (channels, rows, cols) to the max shape.
                big_k, big_h = max(k, ch), max(h2, hp)
                y = b.pad_to(y, k, h2, big_k, big_h)
                p = b.pad_to(p, ch, hp, big_k, big_h)
                s = b.node("Add", [y, p])
                k, h2 = big_k, big_h
            x = b.node("Relu", [s])
            ch, hw = k, h2
        x = b.node("GlobalAveragePool", [x])
        x = b.node("Flatten", [x])
        if self.fc_b is not None:
            x = b.node("Gemm", [x, b.const(self.fc_w), b.const(self.fc_b)], out="descriptors")
        else:
            x = b.node("MatMul", [x, b.const(self.fc_w)], out="descriptors")
        return b.model(
            inp=("chips", 2, ["N", CHIP_SIZE, CHIP_SIZE, 3]),  # 2 == UINT8
            out=("descriptors", 1, ["N", DESCRIPTOR_SIZE]),  # 1 == FLOAT
        )


# Minimal protobuf wire-format encoding of the few ONNX messages we need (onnx.proto3).
def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_int(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _pb_bytes(field: int, v: bytes | str) -> bytes:
    if isinstance(v, str):
        v = v.encode()
    return _varint((field << 3) | 2) + _varint(len(v)) + v


def _attr_int(name: str, v: int) -> bytes:  # AttributeProto: name=1, i=3, type=20 (INT=2)
    return _pb_bytes(1, name) + _pb_int(3, v) + _pb_int(20, 2)


def _attr_ints(name: str, vs) -> bytes:  # ints=8, type INTS=7
    return _pb_bytes(1, name) + b"".join(_pb_int(8, int(v)) for v in vs) + _pb_int(20, 7)


class _OnnxBuilder:
    _DTYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}

    def __init__(self):
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, arr: np.ndarray) -> str:
        arr = np.ascontiguousarray(arr)
        name = self._name("w")
        # TensorProto: dims=1, data_type=2, name=8, raw_data=9 (little-endian)
        self.inits.append(
            b"".join(_pb_int(1, d) for d in arr.shape)
            + _pb_int(2, self._DTYPES[arr.dtype])
            + _pb_bytes(8, name)
            + _pb_bytes(9, arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
        )
        return name

    def node(self, op: str, inputs: list[str], attrs=(), out: str | None = None) -> str:
        out = out or self._name(op.lower())
        # NodeProto: input=1, output=2, op_type=4, attribute=5
        self.nodes.append(
            b"".join(_pb_bytes(1, i) for i in inputs)
            + _pb_bytes(2, out)
            + _pb_bytes(4, op)
            + b"".join(_pb_bytes(5, a) for a in attrs)
        )
        return out

    def conv(self, x: str, c: _Conv, hw: int) -> tuple[str, int, int]:
        k = c.w.shape[1]
        ch = c.w.shape[0] // (c.kh * c.kw)
        w = c.w.reshape(c.kh, c.kw, ch, k).transpose(3, 2, 0, 1)  # OIHW
        py, px = c.pad
        y = self.node(
            "Conv",
            [x, self.const(w), self.const(c.b)],
            attrs=[
                _attr_ints("kernel_shape", [c.kh, c.kw]),
                _attr_ints("strides", list(c.stride)),
                _attr_ints("pads", [py, px, py, px]),
            ],
        )
        if c.relu:
            y = self.node("Relu", [y])
        return y, k, (hw + 2 * py - c.kh) // c.stride[0] + 1

    def pad_to(self, x: str, ch: int, hw: int, big_ch: int, big_hw: int) -> str:
        if (ch, hw) == (big_ch, big_hw):
            return x
        pads = np.array([0, 0, 0, 0, 0, big_ch - ch, big_hw - hw, big_hw - hw], np.int64)
        return self.node("Pad", [x, self.const(pads)])

    @staticmethod
    def _value_info(name: str, elem_type: int, dims) -> bytes:
        # ValueInfoProto{name=1, type=2: TypeProto{tensor_type=1: {elem_type=1, shape=2}}}
        shape = b"".join(
            _pb_bytes(1, _pb_bytes(2, d) if isinstance(d, str) else _pb_int(1, d)) for d in dims
        )
        return _pb_bytes(1, name) + _pb_bytes(2, _pb_bytes(1, _pb_int(1, elem_type) + _pb_bytes(2, shape)))

    def model(self, inp, out) -> bytes:
        graph = (
            b"".join(_pb_bytes(1, n) for n in self.nodes)
            + _pb_bytes(2, "dlib_face_recognition_resnet_model_v1")
            + b"".join(_pb_bytes(5, t) for t in self.inits)
            + _pb_bytes(11, self._value_info(*inp))
            + _pb_bytes(12, self._value_info(*out))
        )
        # ModelProto: ir_version=1 (8), graph=7, opset_import=8 {domain=1 "", version=2: 13}
        return _pb_int(1, 8) + _pb_bytes(7, graph) + _pb_bytes(8, _pb_bytes(1, "") + _pb_int(2, 13))


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


class FastDescriptor:
    """dlib's face descriptor ResNet without dlib.

    ``compute(chips)`` takes 150x150 RGB face chips as produced by
    ``dlib.get_face_chip(img, shape, size=150, padding=0.25)`` and returns the same 128-d
    vectors as ``face_recognition_model_v1.compute_face_descriptor(img, shape)`` (num_jitters=0),
    to ~1e-6.

    backend: ``"onnxruntime"`` (fastest; ~2.5 ms/face on one core here), ``"numpy"`` (only numpy
    + its OpenBLAS; ~6 ms/face) or ``"auto"`` (onnxruntime when importable, else numpy).
    threads: onnxruntime intra-op threads (the app runs one process per core, so 1). The numpy
    backend cannot change BLAS threads after import: set ``OPENBLAS_NUM_THREADS=1`` in worker
    processes before numpy is imported (see :func:`limit_blas_threads`).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        backend: str = "auto",
        threads: int = 1,
        batch_size: int = 8,
    ):
        t0 = time.perf_counter()
        if backend not in ("auto", "onnxruntime", "numpy"):
            raise ValueError(f"unknown backend {backend!r}")
        if model_path is None:
            import face_recognition_models

            model_path = face_recognition_models.face_recognition_model_location()
        info, layers = load_dlib_net(Path(model_path).read_bytes())
        self._plan = _Plan(info, layers)
        self.batch_size = batch_size
        self._session = None
        if backend in ("auto", "onnxruntime"):
            try:
                import onnxruntime as ort
            except ImportError:
                if backend == "onnxruntime":
                    raise
            else:
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                so.log_severity_level = 3
                # No arena, no memory pattern: a worker gives activations back after each call
                # (measured: same speed, ~15 MB less per worker process).
                so.enable_cpu_mem_arena = False
                so.enable_mem_pattern = False
                self._session = ort.InferenceSession(
                    self._plan.to_onnx(), so, providers=["CPUExecutionProvider"]
                )
        if self._session is not None:
            self._plan = None  # onnxruntime holds its own copy of the weights
        self.backend = "onnxruntime" if self._session is not None else "numpy"
        self.load_seconds = time.perf_counter() - t0

    def compute(self, chips: np.ndarray) -> np.ndarray:
        """(N,150,150,3) uint8 RGB chips (or one (150,150,3) chip) -> (N,128) float32."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected (N,{CHIP_SIZE},{CHIP_SIZE},3) chips, got {chips.shape}")
        if chips.dtype != np.uint8:
            raise ValueError(f"expected uint8 chips, got {chips.dtype}")
        out = np.empty((chips.shape[0], DESCRIPTOR_SIZE), np.float32)
        bs = max(1, self.batch_size)
        for s in range(0, chips.shape[0], bs):
            part = np.ascontiguousarray(chips[s : s + bs])
            if self._session is not None:
                out[s : s + bs] = self._session.run(None, {"chips": part})[0]
            else:
                out[s : s + bs] = self._plan.forward_numpy(part)
        return out
