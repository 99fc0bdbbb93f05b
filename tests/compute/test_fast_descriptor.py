"""FastDescriptor must reproduce dlib's face descriptors (max abs difference < 1e-3)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_FACES

dlib = pytest.importorskip("dlib")
face_recognition_models = pytest.importorskip("face_recognition_models")
Image = pytest.importorskip("PIL.Image")

from p2p_attendance.compute.fast_descriptor import (  # noqa: E402
    CHIP_SIZE,
    DlibNetFormatError,
    FastDescriptor,
    load_dlib_net,
)

TOLERANCE = 1e-3

BACKENDS = [
    "numpy",
    pytest.param(
        "onnxruntime",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"
        ),
    ),
]


def _sample_images() -> list[tuple[str, Path]]:
    images = []
    skimage_spec = importlib.util.find_spec("skimage")
    if skimage_spec is not None and skimage_spec.origin:
        images.append(("astronaut", Path(skimage_spec.origin).parent / "data" / "astronaut.png"))
    mpl_spec = importlib.util.find_spec("matplotlib")
    if mpl_spec is not None and mpl_spec.origin:
        path = Path(mpl_spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        images.append(("grace_hopper", path))
    return images


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


class _Dlib:
    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def faces(self, img: np.ndarray, upsample: int = 1):
        """(dlib descriptor, 150x150 chip) for every detected face."""
        out = []
        for rect in self.detector(img, upsample):
            shape = self.shapes(img, rect)
            ref = np.array(self.net.compute_face_descriptor(img, shape), dtype=np.float64)
            chip = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=0.25)
            out.append((ref, chip))
        return out


@pytest.fixture(scope="module")
def dlib_models() -> _Dlib:
    return _Dlib()


@pytest.fixture(scope="module", params=BACKENDS)
def fast(request) -> FastDescriptor:
    fd = FastDescriptor(backend=request.param)
    assert fd.backend == request.param
    return fd


@pytest.fixture(scope="module")
def sample_faces(dlib_models):
    images = _sample_images()
    if not images:
        pytest.skip("scikit-image / matplotlib sample images not installed")
    faces = {}
    for name, path in images:
        if not path.exists():
            pytest.skip(f"sample image missing: {path}")
        faces[name] = dlib_models.faces(_load_rgb(path), 1)
    return faces


def test_sample_faces_match_dlib(fast, sample_faces):
    for name, faces in sample_faces.items():
        assert faces, f"no face detected in {name}"
        refs = np.stack([ref for ref, _ in faces])
        chips = np.stack([chip for _, chip in faces])
        got = fast.compute(chips)
        assert got.shape == (len(faces), 128) and got.dtype == np.float32
        diff = np.abs(got - refs).max()
        assert diff < TOLERANCE, f"{name}: max abs diff {diff}"


def test_batch_equals_single(fast, sample_faces):
    chips = np.stack([chip for faces in sample_faces.values() for _, chip in faces])
    batch = fast.compute(chips)
    for i, chip in enumerate(chips):
        single = fast.compute(chip)  # a single (150,150,3) chip is accepted too
        assert single.shape == (1, 128)
        assert np.abs(single[0] - batch[i]).max() < 1e-5


def test_backends_agree():
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime not installed")
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, size=(3, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    a = FastDescriptor(backend="numpy").compute(chips)
    b = FastDescriptor(backend="onnxruntime").compute(chips)
    assert np.abs(a - b).max() < 1e-4


def test_empty_and_bad_input(fast):
    assert fast.compute(np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(ValueError):
        fast.compute(np.zeros((1, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError):
        fast.compute(np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), np.float32))


def test_load_is_fast(fast):
    assert fast.load_seconds < 5.0  # ~0.02 s (numpy) / ~0.1 s (onnxruntime) here


def test_rejects_other_files():
    with pytest.raises(DlibNetFormatError):
        load_dlib_net(Path(face_recognition_models.pose_predictor_five_point_model_location()).read_bytes())
    data = Path(face_recognition_models.face_recognition_model_location()).read_bytes()
    with pytest.raises(DlibNetFormatError):
        load_dlib_net(data[: len(data) // 2])


def _shared_images() -> list[Path]:
    if not SHARED_FACES.is_dir():
        return []
    paths = []
    for pattern in ("enroll/*/*.jpg", "enroll/*/*.jpeg", "probe/*.jpg", "probe/*.jpeg"):
        paths.extend(sorted(SHARED_FACES.glob(pattern)))
    return paths


@pytest.fixture(scope="module")
def shared_faces(dlib_models):
    """{file name: [(dlib descriptor, chip), ...]} for the shared photos (detected once)."""
    paths = _shared_images()
    if not paths:
        pytest.skip(f"{SHARED_FACES} not present")
    faces = {}
    for path in paths:
        img = _load_rgb(path)
        # Upsampling big photos only makes dlib's HOG detector slow; it does not matter here.
        upsample = 1 if img.shape[0] * img.shape[1] <= 1_500_000 else 0
        faces[f"{path.parent.name}/{path.name}"] = dlib_models.faces(img, upsample)
    return faces


def test_shared_faces_match_dlib(fast, shared_faces):
    checked = 0
    for name, faces in shared_faces.items():
        if not faces:
            continue
        refs = np.stack([ref for ref, _ in faces])
        got = fast.compute(np.stack([chip for _, chip in faces]))
        diff = float(np.abs(got - refs).max())
        assert diff < TOLERANCE, f"{name}: max abs diff {diff}"
        checked += len(faces)
    assert checked > 0, "no faces detected in the shared images"
