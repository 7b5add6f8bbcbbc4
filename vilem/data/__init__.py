"""Dataset adapters. Built-in ones are registered lazily so importing vilem stays cheap."""

from vilem.data.base import DATASETS, DatasetAdapter, Split, default_root, register_dataset

for _name, _target in {
    "synthetic": "vilem.data.synthetic:SyntheticImages",
    "synthetic-video": "vilem.data.synthetic:SyntheticVideos",
    "coco": "vilem.data.karpathy:Coco",
    "flickr30k": "vilem.data.karpathy:Flickr30k",
    "msrvtt": "vilem.data.msrvtt:MsrVtt",
    "sugarcrepe": "vilem.data.sugarcrepe:SugarCrepe",
}.items():
    DATASETS.register(_name, _target)


def load_split(name: str, split: str, root=None, **options) -> Split:
    """Load ``split`` of dataset ``name`` from ``root`` (default: ``datasets/<name>``)."""
    return DATASETS.get(name)(root, **options).load_split(split)


__all__ = ["DATASETS", "DatasetAdapter", "Split", "default_root", "load_split", "register_dataset"]
