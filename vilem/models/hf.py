"""A transformers ``CLIPModel`` and its processor config, loaded from a local folder only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vilem.errors import ConfigError
from vilem.models.base import RetrievalModel, register_model, state_dict_digest


def _features(out: Any) -> torch.Tensor:
    # transformers 4.x returns a tensor, 5.x an output object with the projected pooler_output
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFClip(RetrievalModel):
    def __init__(self, folder: Path, device: str = "cpu"):
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.folder = Path(folder)
        self.device = device
        self.model = (
            CLIPModel.from_pretrained(self.folder, local_files_only=True, use_safetensors=True)
            .to(device)
            .eval()
        )
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        vision = self.model.config.vision_config
        self.image_size = vision.image_size
        try:
            proc = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True)
            self.mean, self.std = tuple(proc.image_mean), tuple(proc.image_std)
        except (OSError, ValueError):
            # CLIP's own normalisation when the folder has no preprocessor_config.json
            self.mean = (0.48145466, 0.4578275, 0.40821073)
            self.std = (0.26862954, 0.26130258, 0.27577711)
        self.max_len = min(self.model.config.text_config.max_position_embeddings, 77)
        self._digest = state_dict_digest(self.model)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixels.to(self.device))
        return F.normalize(_features(out).float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt"
        )
        out = self.model.get_text_features(
            input_ids=tok["input_ids"].to(self.device),
            attention_mask=tok["attention_mask"].to(self.device),
        )
        return F.normalize(_features(out).float(), dim=-1).cpu()

    def config(self) -> dict[str, Any]:
        return {"name": "hf-clip", "folder": str(self.folder), "image_size": self.image_size}

    def weights_digest(self) -> str:
        return self._digest


@register_model("hf-clip")
def build_hf_clip(argument: str | None, device: str = "cpu") -> HFClip:
    """``hf-clip:FOLDER`` where FOLDER holds config.json, weights and tokenizer files."""
    if not argument:
        raise ConfigError("model spec 'hf-clip' needs a local folder: hf-clip:path/to/clip")
    folder = Path(argument)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"hf-clip folder {folder} has no config.json (a transformers CLIPModel)")
    try:
        return HFClip(folder, device)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"could not load a CLIPModel from {folder}: {exc}") from exc
