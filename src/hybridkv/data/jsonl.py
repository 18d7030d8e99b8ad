"""Items on disk: one JSON line per item plus one PNG per image or video frame.

Plain JSON and PNG (never pickle) so that a suite can be inspected, diffed and read by other tools.
Every file is written to a temporary name and renamed into place, and items.jsonl is written last,
so a reader never sees a manifest that points at missing or half-written images.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import InputError
from ..io import atomic_write
from .frames import as_clip
from .item import TaskItem

FORMAT = "hybridkv.data/1"
MANIFEST = "items.jsonl"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def _save_png(image: Image.Image, path: Path) -> None:
    atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def _record(item: TaskItem, out: Path) -> dict[str, Any]:
    if not _SAFE_ID.match(item.id):
        raise InputError(f"item id {item.id!r} cannot name a file; use letters, digits, '_', '-' and '/'")
    images = []
    for i, image in enumerate(item.images):
        rel = f"images/{item.id}_{i}.png"
        _save_png(image, out / rel)
        images.append(rel)
    video = None
    if item.video is not None:
        video = []
        for i, frame in enumerate(item.video):
            rel = f"images/{item.id}_frame{i}.png"
            _save_png(frame, out / rel)
            video.append(rel)
    return {
        "format": FORMAT,
        "id": item.id,
        "task": item.task,
        "split": item.split,
        "prompt": item.prompt,
        "answer": item.answer,
        "images": images,
        "video": video,
        "meta": item.meta,
    }


def export_jsonl(items: Iterable[TaskItem], out_dir: str | os.PathLike[str]) -> Path:
    """Write the items under out_dir and return the path of items.jsonl."""
    out = Path(out_dir)
    lines = [json.dumps(_record(item, out), sort_keys=True, ensure_ascii=False) + "\n" for item in items]
    manifest = out / MANIFEST
    atomic_write(manifest, lambda handle: handle.write("".join(lines).encode("utf-8")))
    return manifest


def _load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image {path}: {exc}; re-export the suite") from None
    # A bare image without file metadata, equal to the one that was generated.
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())


def _item(record: dict[str, Any], root: Path) -> TaskItem:
    if record.get("format") != FORMAT:
        raise InputError(f"format {record.get('format')!r} is not {FORMAT!r}; re-export with this version")
    video = record["video"]
    return TaskItem(
        id=record["id"],
        task=record["task"],
        split=record["split"],
        prompt=record["prompt"],
        answer=record["answer"],
        images=tuple(_load_image(root / rel) for rel in record["images"]),
        video=None if video is None else as_clip(_load_image(root / rel) for rel in video),
        meta=record["meta"],
    )


def load_jsonl(path: str | os.PathLike[str]) -> list[TaskItem]:
    """Read items written by export_jsonl; `path` is items.jsonl or the directory holding it."""
    manifest = Path(path)
    if manifest.is_dir():
        manifest = manifest / MANIFEST
    if not manifest.is_file():
        raise InputError(f"no item file at {manifest}; pass the items.jsonl written by export_jsonl")
    items = []
    with manifest.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                items.append(_item(record, manifest.parent))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(f"{manifest}:{number}: malformed item ({exc!r}); re-export the suite") from None
    return items
