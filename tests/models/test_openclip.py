"""The open_clip peer: a tiny random architecture (a custom model config, nothing downloaded)
saved as safetensors, loaded through ``open-clip:`` specs, must encode exactly as open_clip
itself does, with open_clip's own val transform and tokenizer."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from vilem.errors import ConfigError
from vilem.models import MODELS, load_model

open_clip = pytest.importorskip("open_clip")

ARCH = "vilem-test-tiny"  # registered with open_clip by the fixture below
MODEL_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TEXTS = ["a red circle", "two blue squares left of a green triangle"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """``file``: the architecture's weights; ``folder``: the same model in the hub layout,
    with a preprocessing of its own (mean/std 0.5, squash resize)."""
    root = tmp_path_factory.mktemp("open-clip")
    (root / f"{ARCH}.json").write_text(json.dumps(MODEL_CFG))
    open_clip.add_model_config(root / f"{ARCH}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH, pretrained_text=False)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, root / "tiny.safetensors")
    folder = root / "hub"
    folder.mkdir()
    preprocess = {"mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "squash"}
    config = {"model_cfg": MODEL_CFG, "preprocess_cfg": preprocess}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file(weights, folder / "open_clip_model.safetensors")
    return {"file": root / "tiny.safetensors", "folder": folder}


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)


def _direct(name: str, frames: np.ndarray, **kwargs) -> tuple[torch.Tensor, ...]:
    """Pixels, image and text embeddings as open_clip computes them on its own."""
    model, _, transform = open_clip.create_model_and_transforms(
        name, pretrained_text=False, **kwargs
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    pixels = torch.stack([transform(Image.fromarray(f)) for f in frames])
    with torch.no_grad():
        images = F.normalize(model.encode_image(pixels), dim=-1)
        texts = F.normalize(model.encode_text(tokenizer(TEXTS)), dim=-1)
    return pixels, images, texts


def test_arch_and_file_spec_encodes_as_open_clip_does(tiny):
    torch.manual_seed(123)  # a different random init: only loading the file can match
    model = load_model(f"open-clip:{ARCH}:{tiny['file']}")
    frames = _frames()
    pixels, images, texts = _direct(ARCH, frames, pretrained=str(tiny["file"]))
    got = model.preprocess(frames)
    assert got.shape == (3, 3, 32, 32)
    torch.testing.assert_close(got, pixels)
    torch.testing.assert_close(model.encode_images(got), images)
    torch.testing.assert_close(model.encode_texts(TEXTS), texts)
    assert model.text_max_len == 16
    config = model.config()
    assert config["architecture"] == ARCH and config["checkpoint"] == str(tiny["file"])
    assert model.fingerprint() == load_model(f"open-clip:{ARCH}:{tiny['file']}").fingerprint()


def test_hub_folder_uses_its_own_preprocess_config(tiny):
    model = load_model(f"open-clip:{tiny['folder']}")
    frames = _frames()
    pixels, images, texts = _direct(f"local-dir:{tiny['folder']}", frames)
    got = model.preprocess(frames)
    torch.testing.assert_close(got, pixels)
    # squash: the whole 40x56 frame is resized to 32x32, nothing cropped; mean/std 0.5
    squashed = np.array(Image.fromarray(frames[0]).resize((32, 32), Image.BICUBIC))
    expected = torch.from_numpy(squashed).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)
    assert (got[0] - expected).abs().mean() < 0.02
    assert model.preprocessing()["open_clip"]["mean"] == [0.5, 0.5, 0.5]
    torch.testing.assert_close(model.encode_images(got), images)
    torch.testing.assert_close(model.encode_texts(TEXTS), texts)


def test_pretrained_tag_sets_its_preprocessing_and_quick_gelu(tiny, monkeypatch):
    tag = {"url": "", "hf_hub": "", "mean": (0.5,) * 3, "std": (0.25,) * 3,
           "interpolation": "bilinear", "resize_mode": "shortest", "quick_gelu": True}  # fmt: skip
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, ARCH, {"mytag": tag})
    model = load_model(f"open-clip:{ARCH}@mytag:{tiny['file']}")
    assert model.preprocessing()["open_clip"]["std"] == [0.25, 0.25, 0.25]
    assert model.preprocessing()["open_clip"]["interpolation"] == "bilinear"
    assert any(isinstance(m, open_clip.model.QuickGELU) for m in model.model.modules())
    assert model.config()["pretrained_tag"] == "mytag"
    with pytest.raises(ConfigError, match="no pretrained tag 'mytg'.*did you mean 'mytag'"):
        load_model(f"open-clip:{ARCH}@mytg:{tiny['file']}")


def test_architecture_typo_gets_a_did_you_mean(tiny):
    with pytest.raises(ConfigError, match="unknown open_clip architecture 'ViT-B-3'.*ViT-B-32"):
        load_model(f"open-clip:ViT-B-3:{tiny['file']}")


def test_pickle_checkpoints_are_refused_without_being_opened(tmp_path):
    marker = tmp_path / "unpickled"

    class Trap:  # unpickling this file would create `marker`
        def __reduce__(self):
            return (Path.touch, (marker,))

    for name in ("weights.pt", "weights.bin"):
        torch.save({"state_dict": Trap()}, tmp_path / name)
        with pytest.raises(ConfigError, match="is a pickle .* never unpickles"):
            load_model(f"open-clip:{ARCH}:{tmp_path / name}")
    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": MODEL_CFG}))
    torch.save({"x": Trap()}, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"only pickle weights \(open_clip_pytorch_model.bin\)"):
        load_model(f"open-clip:{folder}")
    assert not marker.exists()


def test_missing_or_mismatched_weights_are_one_line_errors(tiny, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ConfigError, match="no open_clip_config.json"):
        load_model(f"open-clip:{folder}")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": MODEL_CFG}))
    with pytest.raises(ConfigError, match="has no weights"):
        load_model(f"open-clip:{folder}")
    with pytest.raises(ConfigError, match="checkpoint not found"):
        load_model(f"open-clip:{ARCH}:{tmp_path / 'nope.safetensors'}")
    partial = tmp_path / "partial.safetensors"
    save_file({"logit_scale": torch.ones(())}, partial)
    with pytest.raises(ConfigError, match="do not fit the architecture") as exc:
        load_model(f"open-clip:{ARCH}:{partial}")
    assert "\n" not in str(exc.value)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="not a readable safetensors file"):
        load_model(f"open-clip:{ARCH}:{tmp_path / 'junk.safetensors'}")
    for spec, words in [("open-clip", "needs local weights"),
                        ("open-clip:ViT-B-32", "names no weights"),
                        (f"open-clip:{tmp_path / 'missing'}", "is not a folder")]:  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            load_model(spec)


def test_open_clip_is_registered():
    assert "open-clip" in MODELS.names()
