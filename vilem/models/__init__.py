"""Models for evaluation, registered lazily (``NAME`` or ``NAME:ARGUMENT`` specs).

Built in: ``random``, ``vilem:DIR``, ``hf-clip:DIR``, ``hf-siglip:DIR``, ``hf:DIR``,
``open-clip:ARCH[@TAG]:FILE`` / ``open-clip:DIR`` and ``py:MODULE:ATTR[:ARG]`` (your own code).
Installed packages add more through the ``vilem.models`` entry-point group (docs/plugins.md).
"""

from vilem.models.base import MODELS, RetrievalModel, register_model

for _name, _target in {
    "random": "vilem.models.random:build_random",
    "hf-clip": "vilem.models.hf:build_hf_clip",
    "hf-siglip": "vilem.models.hf:build_hf_siglip",
    "hf": "vilem.models.hf:build_hf",
    "open-clip": "vilem.models.openclip:build_open_clip",
    "py": "vilem.models.py:build_py",
    "vilem": "vilem.models.vilem:build_vilem",
}.items():
    MODELS.register(_name, _target)


def load_model(spec: str, device: str = "cpu") -> RetrievalModel:
    """Build the model a spec names, e.g. ``random``, ``hf-clip:DIR``, ``vilem:DIR``,
    ``open-clip:ViT-B-32:weights.safetensors`` or ``py:mypkg.models:build``.

    Args:
        spec: ``NAME`` or ``NAME:ARGUMENT``; NAME is a registered builder (``vilem models``).
        device: where the model runs (``cpu``, ``cuda``, ``cuda:1``).

    Raises:
        ConfigError: an unknown name or an argument the builder refuses (one line).
    """
    name, _, argument = spec.partition(":")
    return MODELS.get(name)(argument or None, device)


__all__ = ["MODELS", "RetrievalModel", "load_model", "register_model"]
