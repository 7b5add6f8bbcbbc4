import numpy as np

from vilem.data.base import Split
from vilem.eval.probes import caption_edit_probes, edit_caption


def rng():
    return np.random.default_rng(0)


def test_colour_edit_changes_exactly_one_colour_word_to_an_absent_colour():
    text = "A red bus parked next to a white car"
    edited = edit_caption(text, "colour", rng())
    before, after = text.split(), edited.split()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == 1
    old, new = changed[0]
    assert old.lower() in {"red", "white"} and new.lower() not in {"red", "white"}


def test_spatial_edit_states_the_opposite():
    assert edit_caption("a cat on the left of a dog", "spatial", rng()) in {
        "a cat under the left of a dog",
        "a cat on the right of a dog",
    }
    assert edit_caption("a man in front of a bus", "spatial", rng()) == "a man behind a bus"
    assert edit_caption("a man behind a bus", "spatial", rng()) == "a man in front of a bus"


def test_swap_att_swaps_two_colours_keeping_the_words():
    text = "a red car next to a blue bus"
    assert edit_caption(text, "swap_att", rng()) == "a blue car next to a red bus"
    assert edit_caption("a red car next to a red bus", "swap_att", rng()) is None


def test_object_edit_keeps_plural_and_changes_the_object():
    for seed in range(6):
        edited = edit_caption("two dogs on a couch", "object", np.random.default_rng(seed))
        words = edited.split()
        assert words[0] == "two" and words[2:4] == ["on", "a"]
        dogs_changed, couch_changed = words[1] != "dogs", words[4] != "couch"
        assert dogs_changed != couch_changed  # exactly one object replaced
        if dogs_changed:
            assert words[1].endswith("s")  # the plural is kept


def test_no_edit_when_category_absent():
    assert edit_caption("a scene", "number", rng()) is None


def test_caption_edit_probes_point_at_the_caption_item_and_respect_the_cap():
    split = Split(
        dataset="d", split="test", root=".", modality="image", items=["a", "b"],
        item_paths=["a.jpg", "b.jpg"],
        texts=["a red car", "two blue birds", "a dog on a bed"],
        text_to_item=[0, 1, 1], revision="r",
    )  # fmt: skip
    probes = caption_edit_probes(split, per_category=1)
    by_cat = {}
    for p in probes:
        by_cat.setdefault(p.category, []).append(p)
        assert p.item == split.text_to_item[split.texts.index(p.positive)]
        assert p.negative != p.positive
    assert all(len(v) == 1 for v in by_cat.values())
    assert {"colour", "number", "spatial", "object"} <= set(by_cat)
    assert caption_edit_probes(split, per_category=1) == probes  # deterministic
