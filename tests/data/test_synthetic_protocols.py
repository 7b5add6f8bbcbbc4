"""The synthetic videos under each retrieval protocol: several captions per video by default
(multi-sentence), the first caption only (sentence), or all joined (paragraph)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vilem.data import load_split
from vilem.data.synthetic import SyntheticConfig, generate, synthetic_probes
from vilem.errors import ConfigError, DataError

SMALL = SyntheticConfig(
    images_train=2, images_val=1, images_test=2, videos_train=1, videos_val=1, videos_test=3
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SMALL, seed=0)
    return root


def load(root: Path, name: str = "synthetic-video", **options):
    return load_split(name, "test", root=root, config=SMALL.to_dict(), **options)


def test_default_video_split_is_multi_sentence_with_five_captions_each(root):
    split = load(root)
    assert split.protocol == "multi" and split.describe()["protocol"] == "multi"
    assert split.text_to_item.tolist() == [i for i in range(3) for _ in range(5)]
    assert len(set(split.texts)) == 15  # distinct captions per video
    assert len(split.notes) == 1  # nothing changed, nothing to add


def test_sentence_protocol_keeps_each_videos_first_caption(root):
    multi, sentence = load(root), load(root, protocol="sentence")
    assert sentence.protocol == "sentence"
    assert sentence.texts == [multi.texts[5 * i] for i in range(3)]
    assert sentence.text_to_item.tolist() == [0, 1, 2]
    assert all(len(sc["captions"]) == 1 for sc in sentence.scenes)
    assert any("protocol 'sentence'" in n for n in sentence.notes)
    # probes still edit the very captions that are queried
    assert {p.positive for p in synthetic_probes(sentence)} <= set(sentence.texts)


def test_paragraph_protocol_joins_the_captions_and_refuses_probes(root):
    multi, paragraph = load(root), load(root, protocol="paragraph")
    assert paragraph.protocol == "paragraph"
    assert paragraph.texts == [" ".join(multi.texts[5 * i : 5 * i + 5]) for i in range(3)]
    with pytest.raises(DataError, match="paragraph protocol: synthetic probes edit single"):
        synthetic_probes(paragraph)


def test_captions_per_video_uses_the_first_n(root):
    split = load(root, captions_per_video=2)
    assert split.protocol == "multi" and split.text_to_item.tolist() == [0, 0, 1, 1, 2, 2]
    one = load(root, captions_per_video=1)
    assert one.protocol == "sentence"  # one caption per video: the sentence protocol
    with pytest.raises(ConfigError, match="captions_per_video=6 exceeds the 5 captions"):
        load(root, captions_per_video=6)
    with pytest.raises(ConfigError, match="captions_per_video must be an integer >= 1"):
        load(root, captions_per_video=0)


def test_the_image_dataset_is_unchanged_and_takes_no_protocol_option(root):
    images = load(root, "synthetic")
    assert images.protocol == "multi" and len(images.texts) == 10
    with pytest.raises(ConfigError, match=r"has no option\(s\) protocol; options: seed, config"):
        load(root, "synthetic", protocol="sentence")


def test_unknown_protocol_is_a_config_error(root):
    with pytest.raises(ConfigError, match="protocol must be one of multi, sentence, paragraph"):
        load(root, protocol="sentences")
