"""Training configs: typed sections, unknown keys and wrong types named by full path with a
did-you-mean, YAML overrides, packaged recipes."""

from __future__ import annotations

import pytest
import yaml

from vilem.errors import ConfigError
from vilem.train.config import (
    TrainConfig,
    apply_overrides,
    config_from_mapping,
    load_config,
    recipe_names,
)

BASE = {"optim": {"steps": 10}}


def test_defaults_build_a_typed_config():
    cfg = config_from_mapping(BASE)
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.steps == 10 and cfg.optim.betas == (0.9, 0.98)
    assert cfg.data.dataset == "synthetic" and cfg.amp == "auto"


def test_unknown_top_level_key_names_it_and_the_closest_key():
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({**BASE, "optmi": {}})
    assert "'optmi'" in str(exc.value) and "did you mean 'optim'" in str(exc.value)


def test_unknown_nested_key_names_the_full_path_and_the_closest_key():
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({"optim": {"steps": 10, "warmup_step": 5}})
    msg = str(exc.value)
    assert "'optim.warmup_step'" in msg and "did you mean 'warmup_steps'" in msg


def test_wrong_type_names_the_path_and_the_expected_type():
    with pytest.raises(ConfigError, match=r"'optim.batch_size' must be int, got 'big'"):
        config_from_mapping({"optim": {"steps": 10, "batch_size": "big"}})
    with pytest.raises(ConfigError, match=r"'data.augment' must be bool, got 1"):
        config_from_mapping({**BASE, "data": {"augment": 1}})
    with pytest.raises(ConfigError, match=r"'amp' must be 'auto' \| 'bf16' \| 'fp32'"):
        config_from_mapping({**BASE, "amp": "fp16"})
    with pytest.raises(ConfigError, match=r"'optim.betas' must be"):
        config_from_mapping({"optim": {"steps": 10, "betas": [0.9]}})


def test_numbers_are_coerced_only_when_lossless():
    cfg = config_from_mapping({"optim": {"steps": 10, "lr": "1e-4", "clip_grad": 1}})
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.clip_grad, float)
    with pytest.raises(ConfigError, match="'optim.steps' must be int"):
        config_from_mapping({"optim": {"steps": 2.5}})


def test_model_section_errors_name_the_model_key_path():
    with pytest.raises(ConfigError, match=r"model\.text\.hiden"):
        config_from_mapping({**BASE, "model": {"text": {"hiden": 64}}})


def test_steps_and_epochs_are_exclusive_and_ranges_checked():
    with pytest.raises(ConfigError, match="exactly one of"):
        config_from_mapping({"optim": {"steps": 10, "epochs": 1}})
    with pytest.raises(ConfigError, match="exactly one of"):
        config_from_mapping({})
    with pytest.raises(ConfigError, match="'optim.grad_accum' must be >= 1"):
        config_from_mapping({"optim": {"steps": 10, "grad_accum": 0}})


def test_overrides_parse_yaml_values_and_create_sections():
    raw = apply_overrides(
        {"optim": {"steps": 10}},
        ["optim.lr=3e-4", "optim.betas=[0.8, 0.9]", "data.val_split=null", "model.text.layers=2"],
    )
    assert raw["model"] == {"text": {"layers": 2}}
    cfg = config_from_mapping(raw)
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.data.val_split is None and cfg.model.text.layers == 2


def test_bad_overrides_are_config_errors():
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ConfigError, match="'seed' is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'"):
        config_from_mapping(apply_overrides(BASE, ["optim.lrr=1"]))


def test_to_dict_round_trips():
    cfg = config_from_mapping({**BASE, "optim": {"steps": 10, "betas": [0.7, 0.8]}})
    again = config_from_mapping(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg


def test_packaged_recipes_load_and_validate():
    names = recipe_names()
    for name in ("paper-vit-b16-bert-base", "small-itc", "small-vilem", "small-video"):
        assert name in names
        cfg = load_config(name)
        assert cfg.optim.steps or cfg.optim.epochs
    itc, vilem = load_config("small-itc"), load_config("small-vilem")
    # the ablation pair differs only in the ViLEM losses
    assert itc.model.use_ed is False and vilem.model.use_ed is True
    itc.model.use_ed = itc.model.use_ec = True
    assert itc == vilem
    paper = load_config("paper-vit-b16-bert-base")
    assert paper.model.fusion_layer == 6 and paper.model.queue_size == 65536
    assert paper.amp == "bf16" and paper.optim.batch_size == 256


def test_unknown_recipe_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'small-vilem'"):
        load_config("small-vilm")


def test_override_of_a_recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  steps: 5\nseed: 1\n")
    assert load_config(path, ["seed=3"]).seed == 3
    (tmp_path / "bad.yaml").write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
