from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reid.data import ImageReadError, Record, read_image
from reid.features import FeatureSet, extract_feature_set, extract_features
from reid.models import build_model
from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform

CPU = torch.device("cpu")
SIZE = {"height": 64, "width": 32}


@pytest.fixture
def records(tmp_path):
    """Six small images: vis are RGB noise, ir are grayscale noise (read back as 3 equal channels)."""
    rng = np.random.default_rng(0)
    records = []
    for n, modality in enumerate(["vis", "ir", "vis", "ir", "ir", "vis"]):
        if modality == "vis":
            image = Image.fromarray(rng.integers(0, 256, (40, 20, 3), dtype=np.uint8), "RGB")
        else:
            image = Image.fromarray(rng.integers(0, 256, (40, 20), dtype=np.uint8), "L")
        path = tmp_path / f"{n:04d}_{modality}.png"
        image.save(path)
        records.append(Record(str(path), pid=n // 2, camid=1 if modality == "vis" else 3, modality=modality))
    return records


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = build_model("tiny")
    model.train()
    for _ in range(2):  # non-trivial BN running stats
        model(torch.randn(4, 3, 64, 32), torch.tensor([False, True, False, True]))
    return model


def test_test_transform():
    image = Image.new("RGB", (20, 40), (255, 0, 128))
    tensor = build_test_transform(64, 32)(image)
    assert tensor.shape == (3, 64, 32) and tensor.dtype == torch.float32
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(tensor[:, 10, 10], expected)
    with pytest.raises(ValueError, match="height=0"):
        build_test_transform(0, 32)


def test_shape_unit_norm_order_and_mode(model, records):
    features = extract_features(model, records, CPU, batch_size=4, progress=False, **SIZE)
    assert features.shape == (6, 64) and features.dtype == torch.float32 and features.device.type == "cpu"
    torch.testing.assert_close(features.norm(dim=1), torch.ones(6))
    assert model.training  # mode restored
    permutation = [4, 0, 5, 2, 1, 3]
    permuted = extract_features(model, [records[i] for i in permutation], CPU, batch_size=4, progress=False, **SIZE)
    torch.testing.assert_close(permuted, features[permutation])


def test_flip_averaging_equals_manual_computation(model, records):
    transform = build_test_transform(**SIZE)
    images = torch.stack([transform(read_image(r.path)) for r in records])
    is_ir = torch.tensor([r.modality == "ir" for r in records])
    model.eval()
    with torch.no_grad():
        plain = model(images, is_ir)["features"]
        flipped = model(torch.flip(images, dims=[3]), is_ir)["features"]
    # the references (ADCA / PGM / PCLHD evaluators): the mean of the L2-normalised features of the image and its
    # flip, normalised again for testing, as it is for clustering
    mean = (F.normalize(plain, dim=1) + F.normalize(flipped, dim=1)) / 2
    features = extract_features(model, records, CPU, batch_size=5, progress=False, **SIZE)
    torch.testing.assert_close(features, F.normalize(mean, dim=1))
    for_clustering = extract_features(model, records, CPU, normalise=False, progress=False, **SIZE)
    torch.testing.assert_close(for_clustering, mean)
    assert (for_clustering.norm(dim=1) < 1 - 1e-4).all()  # not normalised again
    no_flip = extract_features(model, records, CPU, flip=False, progress=False, **SIZE)
    torch.testing.assert_close(no_flip, F.normalize(plain, dim=1))
    assert not torch.allclose(no_flip, features)


def test_is_ir_routes_through_the_ir_stem(model, records):
    before = extract_features(model, records, CPU, progress=False, **SIZE)
    with torch.no_grad():
        model.stems["ir"].conv.weight.zero_()
    after = extract_features(model, records, CPU, progress=False, **SIZE)
    is_ir = torch.tensor([r.modality == "ir" for r in records])
    torch.testing.assert_close(after[~is_ir], before[~is_ir])
    assert (after[is_ir] - before[is_ir]).abs().max() > 1e-3


def test_feature_set_and_empty_records(model, records):
    feature_set = extract_feature_set(model, records, CPU, flip=False, progress=False, **SIZE)
    assert isinstance(feature_set, FeatureSet) and feature_set.records == records
    assert feature_set.features.shape == (6, 64)
    assert extract_features(model, [], CPU, progress=False, **SIZE).shape == (0, 64)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_corrupt_image_names_the_file(model, records, tmp_path, num_workers):
    broken = tmp_path / "broken_ir.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    bad = records[:2] + [Record(str(broken), 9, 3, "ir")]
    with pytest.raises(ImageReadError, match="broken_ir.jpg"):  # also when raised in a worker process
        extract_features(model, bad, CPU, progress=False, num_workers=num_workers, **SIZE)


@pytest.mark.gpu
def test_cuda_bf16_channels_last_matches_cpu(model, records):
    cpu = extract_features(model, records, CPU, progress=False, **SIZE)
    cuda = extract_features(model, records, torch.device("cuda"), progress=False, **SIZE)
    assert cuda.device.type == "cpu" and cuda.dtype == torch.float32
    assert F.cosine_similarity(cpu, cuda).min() > 0.99
    fp32 = extract_features(model, records, torch.device("cuda"), bf16=False, progress=False, **SIZE)
    torch.testing.assert_close(fp32, cpu, atol=1e-4, rtol=1e-4)  # runtime.bf16=false: no autocast on CUDA


def test_bf16_switch_reaches_the_autocast(model, records, monkeypatch):
    """extract_features(bf16=...) is what runtime.bf16 controls: the flag reaches the autocast context."""
    import reid.runtime as runtime

    seen = []
    real = runtime.autocast
    monkeypatch.setattr(runtime, "autocast", lambda device, enabled=True: seen.append(enabled) or real(device, enabled))
    extract_features(model, records, CPU, bf16=False, progress=False, **SIZE)
    extract_features(model, records, CPU, progress=False, **SIZE)
    assert seen == [False, True]


def test_extraction_leaves_the_global_rng_alone(model, records):
    """An evaluation inside a training run must not shift the run's random stream (exact resume)."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    extract_features(model, records, CPU, progress=False, **SIZE)
    torch.testing.assert_close(torch.rand(3), expected)
