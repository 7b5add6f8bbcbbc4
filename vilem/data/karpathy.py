"""COCO and Flickr30K retrieval splits (Karpathy's), from either annotation format in use:

- Karpathy's ``dataset_coco.json`` / ``dataset_flickr30k.json``: one file, every split;
- LAVIS's ``coco_karpathy_{train,val,test}.json`` / ``flickr30k_{train,val,test}.json``: one file
  per split, a list of ``{"image", "caption"}`` entries (the train files have one caption per entry
  and repeat the image).

The adapter only builds paths; images are validated when they are encoded.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vilem.data.base import DatasetAdapter, Split, file_digest, register_dataset
from vilem.errors import ConfigError, DataError
from vilem.io import read_json, resolve_inside
from vilem.registry import closest

ANNOTATION_DIRS = (".", "annotations")  # where annotation files are looked for, under the root


@dataclass
class _Image:
    """One image of a split while it is being read: its path relative to the root and captions."""

    item_id: str
    relative: str
    where: str  # "images[12]" or "entry 12", for messages
    captions: list[str] = field(default_factory=list)


class InsideRoot:
    """``resolve_inside`` for many files in few folders: each folder is resolved once.

    Resolving every one of COCO's 123k paths costs seconds of syscalls; a plain file name joined
    to an already checked folder escapes it only when the file is itself a symlink, which one
    ``lstat`` per file shows (then the file is resolved in full).
    """

    def __init__(self, root: Path, allow_symlinks: bool = False):
        self.root, self.allow_symlinks = root, allow_symlinks
        self._folders: dict[str, Path] = {}

    def __call__(self, relative: str, what: str) -> Path:
        folder, _, name = relative.rpartition("/")
        if name in ("", ".", ".."):
            return resolve_inside(self.root, relative, what, self.allow_symlinks)
        base = self._folders.get(folder)
        if base is None:
            try:
                base = resolve_inside(self.root, folder or ".", what, self.allow_symlinks)
            except DataError:
                # the message names the whole path
                resolve_inside(self.root, relative, what, self.allow_symlinks)
                raise
            self._folders[folder] = base
        path = base / name
        if not self.allow_symlinks and os.path.islink(path):
            resolve_inside(self.root, relative, what)
        return path


def _stem(relative: str) -> str:
    """The item id: the image file name without folder or extension (as ``Path.stem``, faster)."""
    return os.path.splitext(os.path.basename(relative))[0]


def _problem(path: Path, where: str, message: str) -> DataError:
    return DataError(f"{path}: {where}: {message}")


def _get(entry: dict, key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    """``entry[key]``, or a DataError naming the file, the entry and the expected type."""
    if key not in entry:
        raise _problem(path, where, f"missing key {key!r}")
    value = entry[key]
    # bool is an int subclass; a JSON true where a number belongs is still wrong
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _problem(
            path, where, f"{key!r} should be {names}, got {type(value).__name__} {value!r:.60}"
        )
    return value


def _caption(text: str, path: Path, where: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise _problem(path, where, "empty caption")
    return stripped


class _KarpathySplits(DatasetAdapter):
    """Shared reader; subclasses name the files and where the images live."""

    modality = "image"
    karpathy_file: ClassVar[str]
    lavis_files: ClassVar[dict[str, str]]  # split -> LAVIS file name

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        annotation: str | os.PathLike | None = None,
        **options: Any,
    ):
        if options:
            name = next(iter(options))
            raise ConfigError(
                f"unknown option {name!r} for dataset {self.name!r}"
                f"{closest(name, ['annotation'])}; options: annotation"
            )
        if annotation is not None and not isinstance(annotation, (str, os.PathLike)):
            raise ConfigError(
                f"dataset {self.name!r} option annotation must be a file path, got {annotation!r}"
            )
        super().__init__(root, **({} if annotation is None else {"annotation": annotation}))
        self.annotation = annotation

    # -- where the images are -------------------------------------------------------------

    @abstractmethod
    def _karpathy_relative(self, entry: dict, filename: str, path: Path, where: str) -> str:
        """The image path, relative to the root, of a Karpathy ``images[]`` entry."""

    def _lavis_relative(self, image: str) -> str:
        return image

    @abstractmethod
    def _image_note(self) -> str:
        """Where image paths point, for the split's notes."""

    # -- finding the annotation file -----------------------------------------------------------

    def _find(self, split: str) -> tuple[Path, str, list[str]]:
        """(file, format, notes) for ``split``: the ``annotation`` option, else auto-detection."""
        if self.annotation is not None:
            # as given (absolute or from the working folder), else relative to the root
            given = Path(self.annotation)
            path = given if given.is_file() else self.root / given
            return path, "detect", [f"annotation file given explicitly: {path}"]
        dirs = [self.root / d for d in ANNOTATION_DIRS]
        for d in dirs:
            if (d / self.karpathy_file).is_file():
                notes = []
                if any((d2 / f).is_file() for d2 in dirs for f in self.lavis_files.values()):
                    notes.append(f"LAVIS files also present; {self.karpathy_file} was used")
                return d / self.karpathy_file, "karpathy", notes
        lavis_name = self.lavis_files.get(split)
        if lavis_name is not None:
            for d in dirs:
                if (d / lavis_name).is_file():
                    return d / lavis_name, "lavis", []
        if lavis_name is None and any((d / self.lavis_files["train"]).is_file() for d in dirs):
            raise DataError(
                f"split {split!r} of {self.name!r} needs Karpathy's {self.karpathy_file}: LAVIS's "
                f"{self.lavis_files['train']} merges Karpathy's train and restval into one file"
            )
        wanted = self.karpathy_file + (f" or {lavis_name}" if lavis_name else "")
        raise DataError(
            f"no annotation file for {self.name!r} split {split!r}: looked for {wanted} in "
            f"{self.root} and {self.root / 'annotations'} "
            f"(see datasets/{self.name}/README.md)"
        )

    # -- reading -------------------------------------------------------------------------------

    def _load(self, split: str) -> Split:
        path, data_kind, notes = self._find(split)
        data = read_json(path, f"{self.name} annotation file")
        if data_kind == "detect":
            if isinstance(data, dict) and "images" in data:
                data_kind = "karpathy"
            elif isinstance(data, list):
                data_kind = "lavis"
            else:
                raise DataError(
                    f"{path}: expected Karpathy's format (an object with an 'images' list) or "
                    f"LAVIS's (a list of {{'image', 'caption'}} entries), "
                    f"got {type(data).__name__}"
                )
        if data_kind == "karpathy":
            images = list(self._read_karpathy(data, path, split))
            described = f"Karpathy file {path.name}, split field == {split!r}"
        else:
            images = self._read_lavis(data, path, split)
            described = f"LAVIS file {path.name} (all entries)"
        if not images:
            raise DataError(f"{path}: no images for split {split!r}")
        items, item_paths, texts, text_to_item = [], [], [], []
        seen: dict[str, str] = {}
        inside = InsideRoot(self.root, self.allow_symlinks)
        for image in images:
            if image.item_id in seen:
                raise _problem(
                    path, image.where, f"image {image.item_id!r} repeats {seen[image.item_id]}"
                )
            seen[image.item_id] = image.where
            item_paths.append(inside(image.relative, f"{path} {image.where}: image path"))
            text_to_item.extend([len(items)] * len(image.captions))
            items.append(image.item_id)
            texts.extend(image.captions)
        notes = [
            f"{described}: {len(items)} images / {len(texts)} captions",
            *self._split_notes(split, data_kind),
            self._image_note(),
            "images are not opened when the split is loaded; evaluation checks each one (a "
            "missing or corrupt image stops the run, or with --skip-bad-media is skipped and "
            "recorded)",
            *notes,
        ]
        return Split(
            dataset=self.name,
            split=split,
            root=self.root,
            modality="image",
            items=items,
            item_paths=item_paths,
            texts=texts,
            text_to_item=np.asarray(text_to_item, dtype=np.int64),
            revision=file_digest(path),
            notes=notes,
        )

    def _split_notes(self, split: str, data_kind: str) -> list[str]:
        return []

    def _read_karpathy(self, data: Any, path: Path, split: str) -> Iterator[_Image]:
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DataError(f"{path}: expected an object with an 'images' list (Karpathy format)")
        for k, entry in enumerate(data["images"]):
            where = f"images[{k}]"
            if not isinstance(entry, dict):
                raise _problem(path, where, f"expected an object, got {type(entry).__name__}")
            entry_split = _get(entry, "split", str, path, where)
            if entry_split not in self.splits:
                raise _problem(
                    path, where, f"'split' is {entry_split!r}, expected one of {self.splits}"
                )
            if entry_split != split:
                continue
            filename = _get(entry, "filename", str, path, where)
            where = f"images[{k}] ({filename})"
            image = _Image(
                item_id=_stem(filename),
                relative=self._karpathy_relative(entry, filename, path, where),
                where=where,
            )
            for s, sentence in enumerate(_get(entry, "sentences", list, path, where)):
                at = f"{where} sentences[{s}]"
                if not isinstance(sentence, dict):
                    raise _problem(path, at, f"expected an object, got {type(sentence).__name__}")
                image.captions.append(_caption(_get(sentence, "raw", str, path, at), path, at))
            if not image.captions:
                raise _problem(path, where, "image has no sentences")
            yield image

    def _read_lavis(self, data: Any, path: Path, split: str) -> list[_Image]:
        """Entries grouped by image: train files repeat an image (one caption per entry), a
        val or test file lists each image once with all its captions, so a repeat is refused."""
        if not isinstance(data, list):
            raise DataError(
                f"{path}: expected a list of {{'image', 'caption'}} entries (LAVIS format), "
                f"got {type(data).__name__}"
            )
        by_image: dict[str, _Image] = {}
        for k, entry in enumerate(data):
            where = f"entry {k}"
            if not isinstance(entry, dict):
                raise _problem(path, where, f"expected an object, got {type(entry).__name__}")
            relative = self._lavis_relative(_get(entry, "image", str, path, where))
            where = f"entry {k} ({relative})"
            caption = _get(entry, "caption", (str, list), path, where)
            # val/test entries hold every caption of an image, train entries one caption each
            captions = [caption] if isinstance(caption, str) else caption
            if not captions:
                raise _problem(path, where, "'caption' is an empty list")
            if relative in by_image and split != "train":
                raise _problem(
                    path, where, f"image {relative!r} repeats {by_image[relative].where}"
                )
            image = by_image.setdefault(
                relative, _Image(item_id=_stem(relative), relative=relative, where=where)
            )
            for c, text in enumerate(captions):
                at = where if isinstance(caption, str) else f"{where} caption[{c}]"
                if not isinstance(text, str):
                    raise _problem(path, at, f"expected a string, got {type(text).__name__}")
                image.captions.append(_caption(text, path, at))
        return list(by_image.values())


@register_dataset("coco")
class Coco(_KarpathySplits):
    """MS-COCO 2014 images with Karpathy's splits (test: 5,000 images / 25,010 captions)."""

    splits = ("train", "restval", "val", "test")
    description = "MS-COCO captions, Karpathy splits (dataset_coco.json or LAVIS files)"
    karpathy_file = "dataset_coco.json"
    lavis_files = {
        "train": "coco_karpathy_train.json",
        "val": "coco_karpathy_val.json",
        "test": "coco_karpathy_test.json",
    }

    def _karpathy_relative(self, entry: dict, filename: str, path: Path, where: str) -> str:
        return f"{_get(entry, 'filepath', str, path, where)}/{filename}"

    def _image_note(self) -> str:
        return f"image paths: {self.root}/<filepath>/<filename> (e.g. val2014/COCO_val2014_*.jpg)"

    def _split_notes(self, split: str, data_kind: str) -> list[str]:
        if split != "train":
            return []
        if data_kind == "lavis":
            return ["LAVIS's train file is Karpathy's train + restval (113,287 images in full)"]
        return [
            "Karpathy 'train' only (82,783 images in full); the usual 113,287-image training set "
            "is 'train' + 'restval'"
        ]


@register_dataset("flickr30k")
class Flickr30k(_KarpathySplits):
    """Flickr30K with Karpathy's splits (test: 1,000 images / 5,000 captions)."""

    splits = ("train", "val", "test")
    description = "Flickr30K captions, Karpathy splits (dataset_flickr30k.json or LAVIS files)"
    karpathy_file = "dataset_flickr30k.json"
    lavis_files = {
        "train": "flickr30k_train.json",
        "val": "flickr30k_val.json",
        "test": "flickr30k_test.json",
    }
    lavis_image_dir: ClassVar[str] = "flickr30k-images"

    @cached_property
    def image_dir(self) -> str:
        """``flickr30k-images`` (the official archive's folder), or ``images`` if only it exists."""
        if not (self.root / "flickr30k-images").is_dir() and (self.root / "images").is_dir():
            return "images"
        return "flickr30k-images"

    def _karpathy_relative(self, entry: dict, filename: str, path: Path, where: str) -> str:
        return f"{self.image_dir}/{filename}"

    def _lavis_relative(self, image: str) -> str:
        prefix = self.lavis_image_dir + "/"
        if image.startswith(prefix) and self.image_dir != self.lavis_image_dir:
            return f"{self.image_dir}/{image[len(prefix) :]}"
        return image

    def _image_note(self) -> str:
        return f"image paths: {self.root}/{self.image_dir}/<file name>"
