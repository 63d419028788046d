"""Decode-check image files and read what the dataset stores about them.

Every file is fully decoded once at ingest: a truncated JPEG opens fine and fails only
when its pixels are read, and a corrupt file must be skipped and reported, not found
later by a signal.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from fercurate.errors import FercurateError
from tqdm import tqdm

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "TIFF": "image/tiff",
         "WEBP": "image/webp", "GIF": "image/gif"}
_CHANNELS = {"1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "I;16": 1, "LA": 2, "RGB": 3, "YCbCr": 3,
             "RGBA": 4, "CMYK": 4}


@dataclass(frozen=True)
class ImageInfo:
    sha1: str
    size_bytes: int
    mime_type: str
    width: int
    height: int
    num_channels: int


def inspect_image(path: str) -> ImageInfo | str:
    """The image's facts, or a one-line reason why it cannot be used."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decode the pixels: catches truncated and corrupt files
            fmt, mode, (w, h) = im.format, im.mode, im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return f"corrupt or not an image: {e}"
    return ImageInfo(hashlib.sha1(data).hexdigest(), len(data), _MIME.get(fmt, f"image/{(fmt or 'unknown').lower()}"),
                     w, h, _CHANNELS.get(mode, 3))


def file_sha1(path: str) -> str | None:
    """sha1 of the file's bytes, or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest()
    except OSError:
        return None


def file_digests(path: str) -> tuple[str, str] | None:
    """(sha1, sha256) of the file's bytes, read once; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest()


def digest_files(paths: Iterable[str], desc: str = "hashing images") -> list[tuple[str, str] | None]:
    """:func:`file_digests` over many files, in threads."""
    return map_files(file_digests, paths, desc)


def map_files(fn, paths: Iterable[str], desc: str) -> list:
    """``fn`` over many files in 4 threads (file reads and PIL decodes release the GIL), in order."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=4) as pool:
        # disable=None: no bar when stderr is not a terminal (an export piped into training stays quiet)
        return list(tqdm(pool.map(fn, paths, chunksize=256), total=len(paths), desc=desc, unit=" img", leave=False,
                         disable=None))


def inspect_images(paths: Iterable[str], desc: str = "checking images") -> list[ImageInfo | str]:
    """:func:`inspect_image` over many files, in threads (PIL decodes without the GIL)."""
    return map_files(inspect_image, paths, desc)


def hash_files(paths: Iterable[str], desc: str = "hashing images") -> list[str | None]:
    """:func:`file_sha1` over many files: the cheap check that a known file is unchanged."""
    return map_files(file_sha1, paths, desc)


def read_gray(path: str) -> np.ndarray:
    """The image as a 2-D uint8 array, or a one-line error naming the file."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (OSError, ValueError) as e:
        raise FercurateError(f"{path}: cannot read image ({e}); restore the file, or re-ingest the "
                             "source with 'fercurate ingest --update'") from e
