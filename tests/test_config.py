"""The one config parser (vilem.config): the model, training and bench-spec configs agree on
types and messages; recipes inherit; YAML reading is bounded."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from vilem.config import MAX_YAML_NODES, apply_overrides, from_dict, merge, parse_yaml, read_yaml
from vilem.errors import ConfigError
from vilem.train.config import load_config


@dataclass
class Inner:
    k: int = 1


@dataclass
class Outer:
    lr: float = 0.1
    name: str | None = None
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)


def test_the_model_and_training_sections_accept_the_same_numbers():
    # the two parsers used to disagree: optim.lr=7e-2 worked, model.temp_init=7e-2 did not
    cfg = load_config("small-vilem", ["optim.lr=7e-2", "model.temp_init=7e-2"])
    assert cfg.optim.lr == pytest.approx(0.07) and cfg.model.temp_init == pytest.approx(0.07)
    with pytest.raises(ConfigError, match=r"'model\.temp_init' must be float, got 'fast'"):
        load_config("small-vilem", ["model.temp_init=fast"])
    with pytest.raises(ConfigError, match=r"'optim\.lr' must be float, got 'fast'"):
        load_config("small-vilem", ["optim.lr=fast"])


def test_errors_name_the_full_path_and_the_closest_key():
    with pytest.raises(ConfigError, match=r"'inner\.kk' \(did you mean 'k'\?\)"):
        from_dict(Outer, {"inner": {"kk": 2}})
    with pytest.raises(ConfigError, match=r"'inner\.k' must be int, got True"):
        from_dict(Outer, {"inner": {"k": True}})
    with pytest.raises(ConfigError, match=r"'tags\[1\]' must be str, got 3"):
        from_dict(Outer, {"tags": ["a", 3]})
    with pytest.raises(ConfigError, match="'inner' must be a mapping"):
        from_dict(Outer, {"inner": 5})
    assert from_dict(Outer, {"lr": 1, "name": None}) == Outer(lr=1.0)


def test_merge_lays_sections_over_each_other_and_overrides_create_them():
    assert merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": 3}, "b": [2]}) == {
        "a": {"x": 1, "y": 3},
        "b": [2],
    }
    assert apply_overrides({}, ["a.b.c=[1, 2]"]) == {"a": {"b": {"c": [1, 2]}}}


def test_recipes_inherit_from_a_base(tmp_path):
    (tmp_path / "child.yaml").write_text("base: small-vilem\nmodel: {use_ed: false}\nseed: 4\n")
    child, parent = load_config(tmp_path / "child.yaml"), load_config("small-vilem")
    assert child.seed == 4 and child.model.use_ed is False and child.model.use_ec is True
    assert child.model.text == parent.model.text and child.optim == parent.optim
    # small-itc is small-vilem without the ED/EC losses, by inheritance rather than a copy
    itc = load_config("small-itc")
    itc.model.use_ed = itc.model.use_ec = True
    assert itc == parent
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="form a cycle"):
        load_config(tmp_path / "a.yaml")


def test_yaml_alias_bombs_and_huge_files_are_refused(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_NODES:,} YAML nodes"):
        parse_yaml(bomb, "spec")
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "spec") == {"a": [1, 2], "b": [1, 2]}
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (1 << 21) + "\n")
    with pytest.raises(ConfigError, match="the limit is"):
        read_yaml(big)
    with pytest.raises(ConfigError, match="is a directory"):
        read_yaml(tmp_path)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_yaml(tmp_path / "list.yaml")
