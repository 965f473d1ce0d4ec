"""A byte-level CLIP vocabulary written to disk, so tiny pipelines need no download.

Every byte maps to a printable unicode character (the GPT-2/CLIP byte-level scheme); the
vocabulary holds each character alone and with CLIP's end-of-word suffix, plus the two
special tokens. With no merges, every character of a word is one token.
"""

from __future__ import annotations

import json
from pathlib import Path

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def _byte_chars() -> list[str]:
    # Printable Latin-1 bytes stand for themselves; the rest are shifted past 255.
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars: list[str] = []
    shift = 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shift))
            shift += 1
    return chars


def byte_level_vocab() -> dict[str, int]:
    chars = _byte_chars()
    tokens = [*chars, *(c + "</w>" for c in chars), BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}


def write_clip_tokenizer_files(folder: Path) -> Path:
    """Write vocab.json and merges.txt (what CLIPTokenizer.from_pretrained reads) to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(byte_level_vocab(), ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder
