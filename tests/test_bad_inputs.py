"""Bad inputs of the library, one table row each: the input is made in tmp_path, the call is run, and
either the error (type, fragments its one-line message must hold, fragments it must not) or the
correct result is checked."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid.checkpoint import CheckpointError, load_checkpoint
from reid.config import DataConfig
from reid.data import DatasetLayoutError, ImageReadError, Record, make_synthetic_sysu, open_dataset, read_image
from reid.data.llcm import LLCM
from reid.data.regdb import RegDB
from reid.data.sysu import SYSUMM01
from reid.features import extract_features
from reid.models import build_model


# ------------------------------------------------------------------------------ inputs made in tmp_path


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


SIXTEEN_BIT = np.array([[0, 128, 129, 257, 1000, 32896, 65535]], np.uint16)
SIXTEEN_BIT_AS_8 = np.array([[0, 0, 1, 1, 4, 128, 255]], np.uint8)  # round(v / 257)


def png_16bit(tmp: Path) -> Path:
    """A real 16-bit grey PNG: PIL opens it as mode I;16."""
    path = save(Image.fromarray(SIXTEEN_BIT), tmp / "ir16.png")
    assert Image.open(path).mode == "I;16"
    return path


def pgm_16bit(tmp: Path) -> Path:
    """A 16-bit PGM (maxval 65535): PIL opens it as mode I on the 0..65535 scale."""
    path = tmp / "ir16.pgm"
    path.write_bytes(b"P5\n7 1\n65535\n" + SIXTEEN_BIT.astype(">u2").tobytes())
    assert Image.open(path).mode == "I"
    return path


COLOURS = np.array([[[200, 100, 50], [10, 20, 30]]], np.uint8)  # 1 x 2 RGB


def with_alpha(alpha: int) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        rgba = np.concatenate([COLOURS, np.array([[[255], [alpha]]], np.uint8)], axis=2)
        return save(Image.fromarray(rgba, "RGBA"), tmp / f"rgba{alpha}.png")
    return make


def grey_with_alpha(alpha: int) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        return save(Image.fromarray(np.array([[[90, 255], [180, alpha]]], np.uint8), "LA"), tmp / f"la{alpha}.png")
    return make


def palette(transparent_index: int | None) -> Callable[[Path], Path]:
    """Pixels use palette entries 1 and 2 (COLOURS); entry 0 is never used."""
    def make(tmp: Path) -> Path:
        image = Image.new("P", (2, 1))
        image.putpalette([0, 255, 0, *COLOURS[0, 0], *COLOURS[0, 1]])
        image.putpixel((0, 0), 1)
        image.putpixel((1, 0), 2)
        options = {} if transparent_index is None else {"transparency": transparent_index}
        return save(image, tmp / f"p{transparent_index}.png", **options)
    return make


def colour_key(tmp: Path) -> Path:
    """An RGB PNG whose tRNS colour key makes its second pixel see-through."""
    return save(Image.fromarray(COLOURS), tmp / "keyed.png", transparency=tuple(int(v) for v in COLOURS[0, 1]))


def cmyk(tmp: Path) -> Path:
    return save(Image.new("CMYK", (2, 1), (0, 255, 255, 0)), tmp / "cmyk.tif")


def bilevel(tmp: Path) -> Path:
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    return save(image, tmp / "bilevel.png")


def int32_tiff(tmp: Path) -> Path:
    return save(Image.fromarray(np.array([[5, 70000]], np.int32)), tmp / "depth32.tif")


def float_tiff(tmp: Path) -> Path:
    return save(Image.fromarray(np.array([[0.25, 3.5]], np.float32)), tmp / "depth.tif")


def grey3(values) -> np.ndarray:
    """[1, W] grey values -> [1, W, 3] RGB of equal channels."""
    return np.repeat(np.asarray(values, np.uint8)[..., None], 3, axis=2)


# ------------------------------------------------------------------------------ images read correctly


@dataclass(frozen=True)
class Read:
    make: Callable[[Path], Path]
    rgb: np.ndarray  # what read_image(path, "RGB") must return, [H, W, 3] uint8


READ_CORRECTLY = {
    "16-bit PNG (I;16) scaled by 1/257, not clipped to white": Read(png_16bit, grey3(SIXTEEN_BIT_AS_8)),
    "16-bit PGM (I) scaled by 1/257": Read(pgm_16bit, grey3(SIXTEEN_BIT_AS_8)),
    "RGBA, every pixel opaque": Read(with_alpha(255), COLOURS),
    "LA, every pixel opaque": Read(grey_with_alpha(255), grey3([[90, 180]])),
    "P, no transparency": Read(palette(None), COLOURS),
    "P, transparent entry unused": Read(palette(0), COLOURS),
    "CMYK": Read(cmyk, np.array([[[255, 0, 0]] * 2], np.uint8)),
    "1 (bilevel)": Read(bilevel, grey3([[0, 255]])),
}


@pytest.mark.parametrize("row", READ_CORRECTLY.values(), ids=READ_CORRECTLY.keys())
def test_image_mode_is_read_correctly(tmp_path, row):
    path = row.make(tmp_path)
    rgb = read_image(path, "RGB")
    assert rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(rgb), row.rgb)
    grey = read_image(path, "L")
    assert grey.mode == "L"
    if (row.rgb == row.rgb[..., :1]).all():  # grey input: L is the same values
        np.testing.assert_array_equal(np.asarray(grey), row.rgb[..., 0])


# ------------------------------------------------------------------------------ inputs refused by name


@dataclass(frozen=True)
class Refused:
    call: Callable[[Path], Callable[[], object]]  # tmp_path -> the call that must fail
    error: type[Exception]
    fragments: tuple[str, ...]  # in the message; "{tmp}" stands for tmp_path
    absent: tuple[str, ...] = ()  # not in the message


def reading(make: Callable[[Path], Path], mode: str = "RGB") -> Callable[[Path], Callable[[], object]]:
    return lambda tmp: (lambda: read_image(make(tmp), mode))


def sysu_tree(tmp: Path, train: str = "1,2", val: str = "3", test: str = "4,5") -> Path:
    root = tmp / "sysu"
    for camid in range(1, 7):
        (root / f"cam{camid}").mkdir(parents=True)
    (root / "exp").mkdir()
    for split, ids in (("train", train), ("val", val), ("test", test)):
        (root / "exp" / f"{split}_id.txt").write_text(ids)
    return root


def sysu_with(evaluate_on: str = "test", **ids: str) -> Callable[[Path], Callable[[], object]]:
    return lambda tmp: (lambda: SYSUMM01(sysu_tree(tmp, **ids), evaluate_on=evaluate_on))


def regdb_with(file_name: str, text: str) -> Callable[[Path], Callable[[], object]]:
    """A RegDB trial 1 whose index file `file_name` holds `text`, the others one valid line."""
    def call(tmp: Path) -> Callable[[], object]:
        root = tmp / "regdb"
        for split in ("train", "test"):
            for spectrum, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                index_file = root / "idx" / f"{split}_{spectrum}_1.txt"
                index_file.parent.mkdir(parents=True, exist_ok=True)
                index_file.write_text(f"{folder}/7/a.bmp 0\n")
        (root / "idx" / file_name).write_text(text)
        return lambda: RegDB(root)
    return call


def llcm_with(file_name: str, text: str) -> Callable[[Path], Callable[[], object]]:
    """An LLCM tree whose `idx/<file_name>` holds `text`, the others valid."""
    def call(tmp: Path) -> Callable[[], object]:
        root = tmp / "llcm"
        (root / "idx").mkdir(parents=True)
        for spectrum in ("vis", "nir"):
            (root / "idx" / f"train_{spectrum}.txt").write_text(
                f"{spectrum}/0250/0250_c03_s200519_f13770_{spectrum}.jpg 0\n")
        (root / "idx" / "test_id.txt").write_text("0012,0005")
        (root / "idx" / file_name).write_text(text)
        return lambda: LLCM(root)
    return call


class Pickled:
    """A class of its own: not a tensor, number, string, list or dict."""


def checkpoint_with_object(tmp: Path) -> Callable[[], object]:
    path = tmp / "foreign.pt"
    torch.save({"format": "vireid-checkpoint", "version": 1, "kind": "reid", "state": {"extra": Pickled()}}, path)
    return lambda: load_checkpoint(path)


def checkpoint_of_garbage(tmp: Path) -> Callable[[], object]:
    path = tmp / "garbage.pt"
    path.write_bytes(b"\x80\x02" + bytes(range(200, 256)) * 3)  # pickle protocol 2, then no valid opcode
    return lambda: load_checkpoint(path)


def synthetic_over(num_ids: int) -> Callable[[Path], Callable[[], object]]:
    """open_dataset asking num_ids of a complete 3-identity synthetic tree."""
    def call(tmp: Path) -> Callable[[], object]:
        root = tmp / "synthetic"
        make_synthetic_sysu(root, num_ids=3, images_per_camera=1, height=32, width=16)
        return lambda: open_dataset(DataConfig(name="synthetic", root=str(root), num_ids=num_ids))
    return call


def broken_image_in_worker(tmp: Path) -> Callable[[], object]:
    """extract_features with loader workers over records whose third image is not an image."""
    records = [Record(str(save(Image.new("L", (8, 16), 40 * n), tmp / f"{n}.png")), n, 3, "ir") for n in range(2)]
    broken = tmp / "broken_ir.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    model = build_model("tiny")
    return lambda: extract_features(model, [*records, Record(str(broken), 9, 3, "ir")], torch.device("cpu"),
                                    batch_size=1, num_workers=2, progress=False, height=32, width=16)


REFUSED = {
    "32-bit integer TIFF (I)": Refused(reading(int32_tiff), ImageReadError,
                                       ("{tmp}/depth32.tif", "mode I", "no fixed intensity range")),
    "float TIFF (F)": Refused(reading(float_tiff, "L"), ImageReadError,
                              ("{tmp}/depth.tif", "mode F", "no fixed intensity range")),
    "RGBA with a see-through pixel": Refused(reading(with_alpha(0)), ImageReadError,
                                             ("{tmp}/rgba0.png", "mode RGBA", "see-through", "alpha down to 0")),
    "LA with a half-transparent pixel": Refused(reading(grey_with_alpha(128), "L"), ImageReadError,
                                                ("{tmp}/la128.png", "mode LA", "alpha down to 128")),
    "P whose transparent entry is used": Refused(reading(palette(2)), ImageReadError,
                                                 ("{tmp}/p2.png", "mode P", "see-through")),
    "RGB with a colour key that is used": Refused(reading(colour_key), ImageReadError,
                                                  ("{tmp}/keyed.png", "mode RGB", "see-through")),
    "read_image asked for RGBA": Refused(reading(with_alpha(255), "RGBA"), ValueError, ("'RGBA'", "'RGB', 'L'")),
    "corrupt image read in a loader worker": Refused(
        broken_image_in_worker, ImageReadError, ("cannot read image {tmp}/broken_ir.jpg",),
        absent=("Traceback", "DataLoader worker")),
    "empty SYSU-MM01 exp/test_id.txt": Refused(sysu_with(test=""), DatasetLayoutError,
                                               ("{tmp}/sysu/exp/test_id.txt", "lists no test ids")),
    "SYSU-MM01 exp/test_id.txt of commas only": Refused(sysu_with(test=" , ,\n"), DatasetLayoutError,
                                                        ("{tmp}/sysu/exp/test_id.txt", "lists no test ids")),
    "empty SYSU-MM01 exp/train_id.txt": Refused(sysu_with(train=""), DatasetLayoutError,
                                                ("{tmp}/sysu/exp/train_id.txt", "lists no training ids")),
    "empty SYSU-MM01 exp/val_id.txt with evaluate_on=val": Refused(
        sysu_with("val", val=""), DatasetLayoutError, ("{tmp}/sysu/exp/val_id.txt", "lists no val ids to hold out")),
    "empty RegDB index file": Refused(regdb_with("test_thermal_1.txt", ""), DatasetLayoutError,
                                      ("{tmp}/regdb/idx/test_thermal_1.txt", "lists no test images")),
    "RegDB index file of blank lines": Refused(regdb_with("train_visible_1.txt", "\r\n  \r\n"), DatasetLayoutError,
                                               ("{tmp}/regdb/idx/train_visible_1.txt", "lists no training images")),
    "empty LLCM idx/test_id.txt": Refused(llcm_with("test_id.txt", "\n"), DatasetLayoutError,
                                          ("{tmp}/llcm/idx/test_id.txt", "lists no test ids")),
    "empty LLCM idx/train_nir.txt": Refused(llcm_with("train_nir.txt", ""), DatasetLayoutError,
                                            ("{tmp}/llcm/idx/train_nir.txt", "lists no training images")),
    "checkpoint holding a custom class instance": Refused(
        checkpoint_with_object, CheckpointError,
        ("{tmp}/foreign.pt", "objects other than tensors and plain containers", f"{__name__}.Pickled",
         "will not be loaded"),
        absent=("weights_only", "trust")),
    "checkpoint of random bytes": Refused(checkpoint_of_garbage, CheckpointError,
                                          ("{tmp}/garbage.pt", "truncated, corrupt"), absent=("weights_only=False",
                                                                                             "Re-running")),
    "synthetic tree of 3 ids opened with data.num_ids=5": Refused(
        synthetic_over(5), ValueError, ("{tmp}/synthetic/synthetic.json", "num_ids: 3 there, 5 asked")),
}


@pytest.mark.parametrize("row", REFUSED.values(), ids=REFUSED.keys())
def test_bad_input_is_refused_in_one_line_naming_it(tmp_path, row):
    call = row.call(tmp_path)
    with pytest.raises(row.error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    for fragment in row.fragments:
        assert fragment.format(tmp=tmp_path) in message
    for fragment in row.absent:
        assert fragment not in message


def test_worker_error_is_the_in_process_error(tmp_path):
    """A corrupt image gives the same message with loader workers as without."""
    call = broken_image_in_worker(tmp_path)
    with pytest.raises(ImageReadError) as in_workers:
        call()
    with pytest.raises(ImageReadError) as in_process:
        read_image(tmp_path / "broken_ir.jpg")
    assert str(in_workers.value) == str(in_process.value)
    assert in_workers.value.__suppress_context__, "the worker's traceback would be printed after it"


def test_synthetic_tree_with_the_same_options_is_reused(tmp_path):
    """The counterpart of the num_ids row: matching (or unset) options open the existing tree."""
    root = tmp_path / "synthetic"
    make_synthetic_sysu(root, num_ids=3, images_per_camera=1, height=32, width=16)
    for num_ids in (3, None):
        dataset = open_dataset(DataConfig(name="synthetic", root=str(root), num_ids=num_ids,
                                          images_per_camera=1))
        assert len(dataset.train_ids) + len(dataset.test_ids) == 3
