"""Training data: epoch-seeded, rank-split batches; the same batches with or without workers;
images and video clips preprocessed to the model's size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vilem.data import load_split
from vilem.errors import ConfigError, DataError
from vilem.train.data import CaptionPairs, Collate, EpochBatches, Preprocess, make_loader


def _fake_tokenizer(texts, **kwargs):
    ids = torch.tensor([[len(t), sum(map(ord, t)) % 997] for t in texts])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_rank_slices_of_a_global_batch_are_what_one_process_sees(synth_root):
    split = load_split("synthetic", "train", synth_root)  # 16 images x 5 captions
    one = list(EpochBatches(split, 8, seed=3))
    r0 = list(EpochBatches(split, 4, seed=3, rank=0, world_size=2))
    r1 = list(EpochBatches(split, 4, seed=3, rank=1, world_size=2))
    assert len(one) == len(r0) == len(r1) == 10
    for b, b0, b1 in zip(one, r0, r1, strict=True):
        assert b == b0 + b1
    flat = [j for batch in one for _, j in batch]
    assert sorted(flat) == list(range(80))  # every text once per epoch
    expected = [j for _, j in split.training_pairs(3, 0)]
    assert flat == expected


def test_epochs_reshuffle_and_a_start_offset_skips_done_batches(synth_root):
    split = load_split("synthetic", "train", synth_root)
    sampler = EpochBatches(split, 8, seed=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert [j for _, j in epoch0[0]] != [j for _, j in epoch1[0]]
    assert all(e == 1 for batch in epoch1 for e, _ in batch)
    sampler.set_epoch(1, start=7)
    assert list(sampler) == epoch1[7:] and len(sampler) == 3


def test_a_batch_larger_than_the_split_is_a_config_error(synth_root):
    split = load_split("synthetic", "train", synth_root)
    with pytest.raises(ConfigError, match="larger than the 80 texts"):
        EpochBatches(split, 64, seed=0, world_size=2)


def test_workers_give_the_same_batches_as_the_main_process(synth_root):
    split = load_split("synthetic", "train", synth_root)
    prep = Preprocess(image_size=32, augment=True)  # augmentation too is seeded per sample
    runs = []
    for workers in (0, 2):
        ds = CaptionPairs(split, prep, seed=1, cache_images=workers == 0)
        sampler = EpochBatches(split, 8, seed=1)
        loader = make_loader(ds, sampler, Collate(_fake_tokenizer, 16), workers)
        batches = []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            batches += [b for _, b in zip(range(2), loader, strict=False)]
        runs.append(batches)
    for a, b in zip(*runs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    first = runs[0][0]
    assert first["pixels"].shape == (8, 3, 32, 32) and first["item_ids"].dtype == torch.long


def test_image_pixels_are_the_image_normalised_with_the_model_statistics(synth_root):
    from PIL import Image

    split = load_split("synthetic", "train", synth_root)
    prep = Preprocess(image_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    pixels, caption, item = CaptionPairs(split, prep, seed=0)[(0, 7)]
    assert caption == split.texts[7] and item == split.text_to_item[7]
    image = np.array(Image.open(split.item_paths[item]).convert("RGB"))  # 64x64: no resize
    expected = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(pixels, expected)
    small, _, _ = CaptionPairs(split, Preprocess(image_size=32), seed=0)[(0, 7)]
    assert small.shape == (3, 32, 32)


def test_video_clips_sample_frames_per_epoch_deterministically(synth_root):
    split = load_split("synthetic-video", "train", synth_root)
    prep = Preprocess(image_size=32, frames=3, sampling="random")
    ds = CaptionPairs(split, prep, seed=0)
    a, _, _ = ds[(0, 2)]
    b, _, _ = ds[(0, 2)]
    assert a.shape == (3, 3, 32, 32) and torch.equal(a, b)
    # another epoch draws other frames for the same caption (6 frames, 3 segments of 2)
    assert any(not torch.equal(a, ds[(e, 2)][0]) for e in range(1, 6))


def test_collate_tokenizes_like_the_model(tiny_mlm):
    from vilem.model.config import config_from_dict
    from vilem.model.vilem import ViLEM

    model = ViLEM(
        config_from_dict(
            {
                "vision": {"image_size": 32, "patch_size": 16, "width": 32, "depth": 1, "heads": 2},
                "text": {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, "max_len": 6},
                "fusion_layer": 1,
                "use_ed": False,
                "use_ec": False,
            }
        )
    )
    captions = ["a red circle", "two small blue squares left of a large green star"]
    batch = Collate(model.tokenizer, 6)(
        [(torch.zeros(3, 2, 2), c, i) for i, c in enumerate(captions)]
    )
    ids, mask = model.tokenize(captions)
    assert torch.equal(batch["input_ids"], ids) and torch.equal(batch["attention_mask"], mask)
    assert batch["input_ids"].shape == (2, 6) and batch["item_ids"].tolist() == [0, 1]


def test_an_empty_caption_is_a_data_error_naming_it(synth_root):
    split = load_split("synthetic", "train", synth_root)
    split.texts[3] = "  "
    with pytest.raises(DataError, match=r"caption 3 \(of item .*\) is empty"):
        CaptionPairs(split, Preprocess(image_size=32), seed=0)
