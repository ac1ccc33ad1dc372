"""The CycleGAN history buffer of generated images (Shrivastava et al. 2017, reference `ImagePool`).

Unlike the reference, the random draws come from the pool's own CPU `torch.Generator`, whose state is part
of `state_dict()`, so a run resumed from a checkpoint continues exactly as the uninterrupted run would.
"""
from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    """A buffer of up to `pool_size` generated images, queried with each new batch of fakes.

    For each image of `query(images)`: while the pool is not full it is stored and returned; afterwards, with
    probability 0.5 a random stored image is returned and replaced by the new one, else the new one is
    returned. `pool_size=0` disables the buffer. `generator` (CPU) drives the draws; when None, the pool makes
    its own, seeded from torch's global RNG (so torch.manual_seed makes the pool reproducible).
    """

    def __init__(self, pool_size: int = 50, generator: torch.Generator | None = None) -> None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0:
            raise ValueError(f"pool_size must be an integer >= 0, got {pool_size!r}")
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(2 ** 62, ()).item()))
        elif generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
        self.pool_size = pool_size
        self.generator = generator
        self.images: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W], detached, on the device and dtype of `images`.

        With pool_size 0, `images` itself is returned unchanged.
        """
        if images.dim() != 4:
            raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
        if self.pool_size == 0:
            return images
        returned = [self._exchange(image.detach()) for image in images]
        return torch.stack(returned).to(device=images.device, dtype=images.dtype)

    def _exchange(self, image: Tensor) -> Tensor:
        """Store and/or swap one [C, H, W] image; returns the image handed back for it."""
        if len(self.images) < self.pool_size:
            self.images.append(image.clone())
            return image
        if torch.rand((), generator=self.generator).item() > 0.5:
            index = int(torch.randint(self.pool_size, (), generator=self.generator).item())
            previous, self.images[index] = self.images[index], image.clone()
            return previous.to(device=image.device, dtype=image.dtype)
        return image

    def state_dict(self) -> dict:
        """{"images": [C, H, W] CPU tensors, "generator": RNG state ByteTensor, "pool_size": int};
        holds only tensors, lists and ints, so it loads with torch.load(weights_only=True)."""
        return {"images": [image.detach().cpu().clone() for image in self.images],
                "generator": self.generator.get_state(),
                "pool_size": self.pool_size}

    def load_state_dict(self, state: dict) -> None:
        """Restore the stored images (kept on the CPU until handed back) and the RNG state of `state_dict()`."""
        missing = {"images", "generator", "pool_size"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        if state["pool_size"] != self.pool_size:
            raise ValueError(f"state has pool_size={state['pool_size']}, this pool has pool_size={self.pool_size}")
        if len(state["images"]) > self.pool_size:
            raise ValueError(f"state holds {len(state['images'])} images, more than pool_size={self.pool_size}")
        self.generator.set_state(state["generator"])
        self.images = [image.detach().clone() for image in state["images"]]
