"""On-disk caches of VAE latent distributions and text embeddings, keyed by a hash of
everything that determines them, so they are reused exactly while the inputs are unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


class TensorCache:
    def __init__(self, folder: Path, namespace: str) -> None:
        self.folder = Path(folder)
        self.namespace = namespace  # model identity: a different model never hits
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"{_key(self.namespace, key)}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return load_file(p)
        except Exception:  # a torn file: recompute
            return None

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        p = self.path(key)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, p)
