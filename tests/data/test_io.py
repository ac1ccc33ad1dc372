from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reid.data.io import DatasetLayoutError, ImageReadError, read_image, require_dir, require_file, write_image_atomic
from reid.data.record import Record


def test_read_image_round_trip_and_modes(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (8, 4, 3), dtype=np.uint8)
    write_image_atomic(Image.fromarray(pixels), tmp_path / "sub" / "a.png")
    image = read_image(tmp_path / "sub" / "a.png")
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), pixels)
    assert read_image(tmp_path / "sub" / "a.png", mode="L").size == (4, 8)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"], "no temp file left"


@pytest.mark.parametrize("content", [b"", b"not an image", None])
def test_unreadable_image_names_the_file(tmp_path, content):
    path = tmp_path / "cam1" / "0001" / "0001.jpg"
    if content is not None:
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_truncated_jpeg_names_the_file(tmp_path):
    path = tmp_path / "t.jpg"
    Image.fromarray(np.full((64, 32, 3), 120, np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(path)


def test_missing_folder_or_file_says_what_was_expected(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"SYSU-MM01 root: expected a folder at .*nowhere"):
        require_dir(tmp_path / "nowhere", "SYSU-MM01 root")
    with pytest.raises(DatasetLayoutError, match=r"test ids: expected a file at .*test_id.txt"):
        require_file(tmp_path / "test_id.txt", "test ids")
    assert isinstance(DatasetLayoutError("x"), FileNotFoundError)


def test_record_rejects_unknown_modality():
    assert Record("a.jpg", 1, 3, "ir").modality == "ir"
    with pytest.raises(ValueError, match="'rgb'"):
        Record("a.jpg", 1, 1, "rgb")


def test_image_read_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(ImageReadError("/x/cam1/0001/0002.jpg", "truncated")))
    assert isinstance(error, ImageReadError) and error.path == "/x/cam1/0001/0002.jpg" and "truncated" in str(error)
