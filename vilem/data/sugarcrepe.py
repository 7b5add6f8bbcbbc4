"""SugarCrepe probe files: ``{"<idx>": {"filename", "caption", "negative_caption"}}`` per category
(replace_obj.json, ...), images from COCO val2017. Items are the distinct images, texts the true
captions, and every (image, caption, negative_caption) triple is a probe of its file's category."""

from __future__ import annotations

from vilem.data.base import DatasetAdapter, Probe, Split, file_digest, register_dataset
from vilem.errors import DataError
from vilem.io import read_json, resolve_inside

CATEGORIES = (
    "replace_obj",
    "replace_att",
    "replace_rel",
    "swap_obj",
    "swap_att",
    "add_obj",
    "add_att",
)


@register_dataset("sugarcrepe")
class SugarCrepe(DatasetAdapter):
    modality = "image"
    splits = ("test",)
    description = "SugarCrepe compositionality probes over COCO val2017 images"

    def _load(self, split: str) -> Split:
        image_dir = self.options.get("image_dir", "val2017")
        files = [self.root / f"{c}.json" for c in CATEGORIES if (self.root / f"{c}.json").is_file()]
        if not files:
            raise DataError(
                f"no SugarCrepe category files (e.g. replace_obj.json) in {self.root}; "
                "see datasets/sugarcrepe/README.md"
            )
        items: dict[str, int] = {}
        paths, texts, text_to_item, probes = [], [], [], []
        for path in files:
            data = read_json(path, "SugarCrepe file")
            if not isinstance(data, dict):
                raise DataError(f"{path}: expected an object mapping ids to probes")
            for key, entry in data.items():
                if not isinstance(entry, dict) or not all(
                    isinstance(entry.get(f), str)
                    for f in ("filename", "caption", "negative_caption")
                ):
                    raise DataError(
                        f"{path}: entry {key!r} needs string fields filename, caption, "
                        "negative_caption"
                    )
                if not entry["caption"].strip() or not entry["negative_caption"].strip():
                    raise DataError(f"{path}: entry {key!r} has an empty caption")
                name = entry["filename"]
                if name not in items:
                    items[name] = len(items)
                    paths.append(
                        resolve_inside(
                            self.root, f"{image_dir}/{name}", "image path", self.allow_symlinks
                        )
                    )
                texts.append(entry["caption"].strip())
                text_to_item.append(items[name])
                probes.append(
                    Probe(
                        items[name],
                        entry["caption"].strip(),
                        entry["negative_caption"].strip(),
                        path.stem,
                    )
                )
        return Split(
            dataset=self.name,
            split=split,
            root=self.root,
            modality="image",
            items=list(items),
            item_paths=paths,
            texts=texts,
            text_to_item=text_to_item,
            revision=file_digest(*files),
            probes=probes,
            notes=[f"SugarCrepe categories: {', '.join(p.stem for p in files)}"],
        )
