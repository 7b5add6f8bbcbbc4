import json
from pathlib import Path

import pytest

from vilem.data import load_split
from vilem.errors import DataError


def write(root: Path, name: str, entries: dict) -> None:
    (root / f"{name}.json").write_text(json.dumps(entries))


def test_sugarcrepe_items_texts_and_probes(tmp_path: Path):
    write(tmp_path, "replace_att", {
        "0": {"filename": "1.jpg", "caption": "a red bus", "negative_caption": "a blue bus"},
        "1": {"filename": "2.jpg", "caption": "a tall man", "negative_caption": "a short man"},
    })  # fmt: skip
    write(tmp_path, "swap_obj", {
        "0": {"filename": "1.jpg", "caption": "a bus by a car",
              "negative_caption": "a car by a bus"},
    })  # fmt: skip
    split = load_split("sugarcrepe", "test", root=tmp_path)
    assert split.items == ["1.jpg", "2.jpg"]
    assert split.texts == ["a red bus", "a tall man", "a bus by a car"]
    assert split.text_to_item.tolist() == [0, 1, 0]
    assert [(p.item, p.category) for p in split.probes] == [
        (0, "replace_att"), (1, "replace_att"), (0, "swap_obj")
    ]  # fmt: skip
    assert split.item_paths[1] == tmp_path.absolute() / "val2017" / "2.jpg"


def test_sugarcrepe_bad_inputs(tmp_path: Path):
    with pytest.raises(DataError, match="no SugarCrepe category files"):
        load_split("sugarcrepe", "test", root=tmp_path)
    write(tmp_path, "add_obj", {"0": {"filename": "1.jpg", "caption": "x"}})
    with pytest.raises(DataError, match="add_obj.json: entry '0' needs string fields"):
        load_split("sugarcrepe", "test", root=tmp_path)
    write(tmp_path, "add_obj", {"0": {"filename": "../../x.jpg", "caption": "x",
                                      "negative_caption": "y"}})  # fmt: skip
    with pytest.raises(DataError, match="outside the dataset root"):
        load_split("sugarcrepe", "test", root=tmp_path)
