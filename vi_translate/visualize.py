"""Pictures of a translator run: the translation grid and the loss curves."""
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from reid.data import write_image_atomic  # noqa: E402

from .data import to_image  # noqa: E402


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """[B, 1 or 3, H, W] -> [B, 3, H, W] (grey repeated)."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def save_translation_grid(path: str | os.PathLike, rows: list[torch.Tensor]) -> Path:
    """Save rows of images side by side: each row [B, C, H, W] in [-1, 1] becomes one grid column
    block; e.g. [real vis, vis2ir, reconstructed vis, real ir, ir2vis, reconstructed ir].

    The grid has one line per sample index and one column per row tensor.
    """
    columns = [as_rgb(row.detach().float().cpu()) for row in rows]
    per_sample = torch.stack(columns, dim=1).flatten(0, 1)  # sample-major: s0c0, s0c1, ...
    grid = make_grid(per_sample, nrow=len(columns), padding=2, pad_value=1.0)
    path = Path(path)
    write_image_atomic(to_image(grid), path)
    return path


def plot_loss_curves(metrics_jsonl: str | os.PathLike, path: str | os.PathLike, keys: list[str] | None = None) -> Path:
    """Plot every loss of a metrics.jsonl (one JSON object per line with "step" and loss values)."""
    records = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line.strip()]
    keys = keys or sorted({k for r in records for k in r if k[:2] in ("G_", "D_") or k.startswith(("cycle", "idt"))})
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key in keys:
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            axis.plot(*zip(*points), label=key)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(ncol=4, fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    os.replace(tmp, path)
    return path
