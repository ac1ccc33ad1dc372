from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from reid.data.io import (DatasetLayoutError, ImageReadError, raise_image_errors, read_image, require_dir,
                          require_file, require_listed, sixteen_to_eight_bit, write_image_atomic)
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


class _UnreadableImages(torch.utils.data.Dataset):
    """Every item reads the same file, which is not an image."""

    def __init__(self, path):
        self.path = path

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.asarray(read_image(self.path))


def raising(*items, error):
    """A generator yielding `items`, then raising `error`."""
    yield from items
    raise error


def test_raise_image_errors_passes_batches_and_in_process_errors_through(tmp_path):
    assert list(raise_image_errors(iter([1, 2, 3]))) == [1, 2, 3]
    own = ImageReadError(tmp_path / "a.jpg", "truncated")
    unrelated = ImageReadError("a message without a worker traceback")
    for error in (own, unrelated):
        batches = raise_image_errors(raising(1, error=error))
        assert next(batches) == 1
        with pytest.raises(ImageReadError) as info:
            next(batches)
        assert info.value is error


def test_raise_image_errors_gives_a_worker_error_its_one_line_message(tmp_path):
    path = tmp_path / "cam3" / "0001" / "0001.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an image")
    with pytest.raises(ImageReadError) as in_process:
        read_image(path)
    loader = torch.utils.data.DataLoader(_UnreadableImages(path), num_workers=1)
    with pytest.raises(ImageReadError) as raw:  # what a loader alone raises: the worker's traceback
        list(loader)
    assert "Traceback" in str(raw.value) and str(raw.value).count("\n") > 5
    with pytest.raises(ImageReadError) as info:
        list(raise_image_errors(loader))
    assert str(info.value) == str(in_process.value)
    assert info.value.__suppress_context__


def test_require_listed_names_the_file_that_lists_nothing(tmp_path):
    assert require_listed([3, 1], tmp_path / "ids.txt", "test ids") == [3, 1]
    with pytest.raises(DatasetLayoutError, match=re.escape(f"{tmp_path / 'ids.txt'} lists no test ids")):
        require_listed([], tmp_path / "ids.txt", "test ids")


@pytest.mark.parametrize("value, expected", [(0, 0), (128, 0), (129, 1), (257, 1), (32896, 128), (65406, 254),
                                             (65407, 255), (65535, 255)])
def test_sixteen_to_eight_bit_rounds_value_over_257(value, expected):
    image = Image.fromarray(np.array([[value]], np.uint16))
    assert image.mode == "I;16"
    assert sixteen_to_eight_bit(image).mode == "L" and sixteen_to_eight_bit(image).getpixel((0, 0)) == expected
