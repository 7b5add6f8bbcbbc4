"""Models for evaluation, registered lazily (``NAME`` or ``NAME:ARGUMENT`` specs)."""

from vilem.models.base import MODELS, RetrievalModel, register_model

for _name, _target in {
    "random": "vilem.models.random:build_random",
    "hf-clip": "vilem.models.hf:build_hf_clip",
    "vilem": "vilem.models.vilem:build_vilem",
}.items():
    MODELS.register(_name, _target)


def load_model(spec: str, device: str = "cpu") -> RetrievalModel:
    """Build the model a spec names: ``random``, ``hf-clip:DIR``, ``vilem:DIR``."""
    name, _, argument = spec.partition(":")
    return MODELS.get(name)(argument or None, device)


__all__ = ["MODELS", "RetrievalModel", "load_model", "register_model"]
