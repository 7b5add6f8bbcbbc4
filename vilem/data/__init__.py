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
    """Load ``split`` of dataset ``name`` from ``root`` (default: ``datasets/<name>``).

    Every adapter takes ``allow_symlinks`` (default false): follow a symlink inside the root
    whose target lies outside it, which is refused otherwise."""
    allow = options.pop("allow_symlinks", False)
    if not isinstance(allow, bool):
        from vilem.errors import ConfigError

        raise ConfigError(f"dataset option allow_symlinks must be true or false, got {allow!r}")
    adapter = DATASETS.get(name)(root, **options)
    adapter.allow_symlinks = allow
    return adapter.load_split(split)


__all__ = ["DATASETS", "DatasetAdapter", "Split", "default_root", "load_split", "register_dataset"]
