"""Multi-seed benchmark specs: seed validation, the per-seed layout, init from the same seed, and
comparison.json from `vilem bench --report` (training replaced by a fake that writes a model)."""

import json
import re
from pathlib import Path

import pytest
import yaml

from vilem.bench.runner import Runner
from vilem.bench.spec import Cell, load_spec, parse_spec
from vilem.cli import main
from vilem.errors import ConfigError
from vilem.results import load_result

REPO = Path(__file__).resolve().parents[2]
TINY = {"images_train": 4, "images_val": 2, "images_test": 6, "videos_train": 2, "videos_val": 2,
        "videos_test": 3}  # fmt: skip


def seeded_spec(tmp_path: Path, **changes) -> dict:
    data = {"root": str(tmp_path / "data"), "options": {"config": TINY}}
    raw = {
        "name": "s",
        "out": str(tmp_path / "out"),
        "seed": 7,  # the evaluation seed, distinct from every training seed
        "seeds": [0, 1],
        "bootstrap": 10,
        "models": {
            "random": {"spec": "random"},
            "itc": {"train": "small-itc"},
            "itc-video": {"train": "small-video", "init": "itc"},
            "abl": {"train": "small-itc", "overrides": ["model.use_local=false"], "seeds": [1]},
        },
        "datasets": {
            "syn": {"dataset": "synthetic", **data},
            "vid": {"dataset": "synthetic-video", **data},
        },
        "tasks": ["retrieval"],
        "exclude": [{"model": "itc-video", "dataset": "syn"}, {"model": "abl", "dataset": "vid"}],
    }
    raw.update(changes)
    return raw


@pytest.fixture
def fake_training(monkeypatch):
    """Training writes a model folder instantly; a ``vilem:`` folder loads as a random model
    seeded by its training seed, so every seed scores differently. Returns the calls made."""
    from vilem.models import load_model as real_load
    from vilem.models.random import RandomModel

    calls = []

    def train(cfg, out_dir, resume=False, quiet=False, max_steps=None):
        out_dir = Path(out_dir)
        calls.append(
            {"dir": out_dir, "seed": cfg.seed, "init_from": cfg.init_from, "device": cfg.device}
        )
        (out_dir / "model").mkdir(parents=True)
        (out_dir / "model" / "config.json").write_text("{}")
        (out_dir / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
        return {}

    def load_model(spec, device="cpu"):
        if spec.startswith("vilem:"):
            seed = re.search(r"seed(\d+)", spec)
            return RandomModel(seed=100 + (int(seed.group(1)) if seed else 0))
        return real_load(spec, device=device)

    monkeypatch.setattr("vilem.train.loop.train", train)
    monkeypatch.setattr("vilem.models.load_model", load_model)
    return calls


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": []}, "seeds must be a non-empty list of integers"),
        ({"seeds": 3}, "seeds must be a non-empty list of integers"),
        ({"seeds": [0, "1"]}, "seeds must hold integers, got '1'"),
        ({"seeds": [0, True]}, "seeds must hold integers, got True"),
        ({"seeds": [0, 1, 0]}, "seeds lists seed(s) [0] more than once"),
        ({"seeds": [0, 1], "quick": {"seeds": [2]}}, "quick.seeds [2] are not in the spec's seeds"),
        ({"compare": {"model": "itc", "baseline": "randon"}}, "(did you mean 'random'?)"),
        ({"compare": {"model": "itc"}}, "compare needs 'baseline'"),
        ({"compare": {"model": "itc", "baseline": "random", "video_model": "itc-video"}},
         "needs both 'video_model' and 'video_baseline'"),
        ({"compare": {"model": "itc", "basline": "random"}}, "did you mean 'baseline'?"),
        ({"compare": {"model": "itc", "baseline": "random", "ablations": ["ab"]}},
         "compare.ablations names unknown model 'ab' (did you mean 'abl'?)"),
    ],
)  # fmt: skip
def test_bad_seeds_or_compare_are_one_line_config_errors(tmp_path, change, message):
    with pytest.raises(ConfigError) as exc:
        parse_spec(seeded_spec(tmp_path, **change))
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"train": "small-itc", "seeds": [0, 5]}, "seed(s) [5] are not in the spec's seeds [0, 1]"),
        ({"spec": "random", "seeds": [0]}, "only trained entries ('train') take seeds"),
        ({"train": "small-itc", "seeds": []}, "models.m.seeds must be a non-empty list"),
        ({"train": "small-video", "init": "abl"}, "initialises from abl, which has no seed(s) [0]"),
    ],
)  # fmt: skip
def test_bad_per_model_seeds_are_config_errors(tmp_path, entry, message):
    raw = seeded_spec(tmp_path)
    raw["models"]["m"] = entry
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_spec(raw)


def test_per_model_seeds_need_a_spec_seeds_list(tmp_path):
    raw = seeded_spec(tmp_path)
    del raw["seeds"]
    with pytest.raises(ConfigError, match="models.abl.seeds needs a top-level 'seeds' list"):
        parse_spec(raw)


def test_cells_repeat_trained_entries_per_seed_and_untrained_ones_once(tmp_path):
    spec = parse_spec(seeded_spec(tmp_path))
    names = [c.filename() for c in spec.cells()]
    assert names == [
        "random/syn__retrieval.json",
        "random/vid__retrieval.json",
        "itc/seed0/syn__retrieval.json",
        "itc/seed0/vid__retrieval.json",
        "itc/seed1/syn__retrieval.json",
        "itc/seed1/vid__retrieval.json",
        "itc-video/seed0/vid__retrieval.json",
        "itc-video/seed1/vid__retrieval.json",
        "abl/seed1/syn__retrieval.json",
    ]
    # --quick may keep fewer seeds; a per-model list is narrowed to them
    quick = parse_spec(seeded_spec(tmp_path, quick={"seeds": [1]}), quick=True)
    assert {c.seed for c in quick.cells()} == {None, 1}


def test_without_seeds_the_matrix_and_file_names_are_as_before(tmp_path):
    raw = seeded_spec(tmp_path)
    del raw["seeds"], raw["models"]["abl"]["seeds"]
    spec = parse_spec(raw)
    assert spec.seeds is None and all(c.seed is None for c in spec.cells())
    assert "itc/syn__retrieval.json" in [c.filename() for c in spec.cells()]
    assert Cell("m", "d", "t").filename() == "m/d__t.json"


def test_runner_trains_once_per_seed_and_writes_per_seed_results(tmp_path, fake_training):
    spec = parse_spec(seeded_spec(tmp_path))
    summary = Runner(spec, quiet=True).run()
    assert not summary.failed and len(summary.done) == 9
    models = tmp_path / "out" / "models"
    trained = {(c["dir"].relative_to(models).as_posix(), c["seed"]) for c in fake_training}
    assert trained == {("itc/seed0", 0), ("itc/seed1", 1), ("itc-video/seed0", 0),
                       ("itc-video/seed1", 1), ("abl/seed1", 1)}  # fmt: skip
    assert len(fake_training) == 5  # itc is not trained again for its fine-tune
    inits = {c["dir"].name: c["init_from"] for c in fake_training if "itc-video" in str(c["dir"])}
    assert inits == {k: str(models / "itc" / k / "model") for k in ("seed0", "seed1")}
    results = tmp_path / "out" / "results"
    for k in (0, 1):
        r = load_result(results / "itc" / f"seed{k}" / "syn__retrieval.json")
        # scored with the spec's seed
        assert r.model.train_seed == k and r.protocol.seed == 7
        assert r.model.train_log == f"models/itc/seed{k}/log.jsonl"
        assert r.model.request["train"] == "small-itc" and r.model.request["config"]
    untrained = load_result(results / "random" / "syn__retrieval.json")
    assert untrained.model.train_seed is None
    # the seeds score differently on identical queries
    r0, r1 = (load_result(results / "itc" / f"seed{k}" / "syn__retrieval.json") for k in (0, 1))
    assert r0.per_query != r1.per_query
    assert len(r0.per_query["t2i_ranks"]) == len(r1.per_query["t2i_ranks"])
    again = Runner(spec, quiet=True).run()
    assert again.done == [] and len(again.skipped) == 9 and len(fake_training) == 5


def test_a_single_seed_spec_keeps_the_old_layout(tmp_path, fake_training):
    raw = seeded_spec(tmp_path, tasks=["retrieval"])
    del raw["seeds"], raw["models"]["abl"]
    Runner(parse_spec(raw), quiet=True).run()
    assert {c["dir"].name for c in fake_training} == {"itc", "itc-video"}
    assert {c["seed"] for c in fake_training} == {7}
    assert fake_training[-1]["init_from"] == str(tmp_path / "out" / "models" / "itc" / "model")
    r = load_result(tmp_path / "out" / "results" / "itc" / "syn__retrieval.json")
    assert r.model.train_seed is None and r.model.train_log == "models/itc/log.jsonl"


def test_bench_report_writes_comparison_json_and_prints_the_deltas(tmp_path, fake_training, capsys):
    # retrieval only: probe deltas (one per category) are slow to bootstrap and are covered in
    # tests/report/test_seeds.py
    raw = seeded_spec(tmp_path, tasks=["retrieval"])
    raw["models"] = {
        "random": {"spec": "random"},
        "itc": {"train": "small-itc"},
        "vilem": {"train": "small-itc"},
    }
    raw["exclude"] = []
    raw["compare"] = {"model": "vilem", "baseline": "itc"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    report = tmp_path / "rep"
    code = main(["bench", str(path), "--quiet", "--baseline", "itc", "--report", str(report)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    comp = json.loads((report / "comparison.json").read_text())
    assert (comp["model"], comp["baseline"], comp["seeds"]) == ("vilem", "itc", [0, 1])
    # the spec's dataset keys name the data compared
    assert comp["datasets"] == {"image": "syn/test", "video": "vid/test"}
    deltas = comp["deltas"]
    assert set(deltas) == {"image_rsum", "image_probe_macro", "video_zero_shot_rsum"}
    for key in ("image_rsum", "video_zero_shot_rsum"):
        assert deltas[key]["n_seeds"] == 2 and deltas[key]["delta"] is not None
    assert (
        deltas["image_probe_macro"]["note"]
        == "no finished probe result of vilem and itc on image data"
    )
    assert comp["model_only"]["image_ed_f1"]["value"] is None  # random models cannot proofread
    assert "| image_rsum" in printed and "vilem vs itc (seeds [0, 1])" in printed
    assert "| vilem (2 seeds)" in printed and "| random " in printed


def test_seeds_spec_is_valid_and_runs_ablations_on_one_seed():
    spec = load_spec(REPO / "benchmarks" / "seeds.yaml")
    default = load_spec(REPO / "benchmarks" / "default.yaml")
    assert spec.seeds == [0, 1, 2] and spec.out == "runs/bench/seeds"
    ablations = ["ed-only", "ec-only", "global-only", "local-only"]
    assert spec.compare == {"model": "vilem", "baseline": "itc", "video_model": "vilem-video",
                            "video_baseline": "itc-video", "ablations": ablations}  # fmt: skip
    # the same MLM corpus and recipes; the main job trains less (its MLM, its image models) to
    # fit its 15 minutes, and leaves the video fine-tunes to this spec
    assert spec.mlm["corpus"] == default.mlm["corpus"]
    assert spec.mlm["steps"] >= default.mlm["steps"]

    def steps(overrides: list[str]) -> int:
        (value,) = [o.split("=", 1)[1] for o in overrides if o.startswith("optim.steps=")]
        return int(value)

    for name in ("itc", "vilem"):
        assert spec.model(name).train == default.model(name).train
        assert steps(spec.model(name).overrides) >= steps(default.model(name).overrides)
    for name in ("itc", "vilem", "itc-video", "vilem-video"):
        assert spec.train_seeds(spec.model(name)) == [0, 1, 2]
    for name in ablations:
        assert spec.train_seeds(spec.model(name)) == [0]
    cells = spec.cells()
    assert not any(c.model in ablations and c.dataset == "synthetic-video" for c in cells)
    assert not any(c.model.endswith("-video") and c.dataset == "synthetic" for c in cells)
    assert spec.train_seeds(spec.model("random")) == [None]
    quick = load_spec(REPO / "benchmarks" / "seeds.yaml", quick=True, out="q")
    assert quick.seeds == [0, 1] and len(quick.cells()) < len(cells)


def test_the_device_flag_reaches_training_as_well_as_evaluation(tmp_path, fake_training):
    # `vilem bench --device cpu` used to train wherever the recipe said (on a GPU when present)
    Runner(parse_spec(seeded_spec(tmp_path)), quiet=True, device="cpu").run()
    assert fake_training and {c["device"] for c in fake_training} == {"cpu"}
    fake_training.clear()
    Runner(parse_spec(seeded_spec(tmp_path, out=str(tmp_path / "out2"))), quiet=True).run()
    assert fake_training and {c["device"] for c in fake_training} == {"auto"}  # the recipe's


def test_a_changed_recipe_retrains_the_model_and_keeps_the_old_one_aside(
    tmp_path, fake_training, capsys
):
    raw = seeded_spec(tmp_path, tasks=["retrieval"])
    del raw["seeds"], raw["models"]["abl"]
    Runner(parse_spec(raw), quiet=True).run()
    assert len(fake_training) == 2
    models = tmp_path / "out" / "models"
    assert json.loads((models / "itc" / "bench_request.json").read_text())["train"] == "small-itc"
    # the same spec again: nothing is trained or evaluated
    again = Runner(parse_spec(raw), quiet=True).run()
    assert again.done == [] and len(fake_training) == 2
    raw["models"]["itc"]["overrides"] = ["optim.lr=1e-3"]
    summary = Runner(parse_spec(raw)).run()
    out = capsys.readouterr().out
    assert "[bench] retraining itc: its recipe changed" in out
    assert "rerunning itc/syn__retrieval.json: the model changed" in out
    # itc, then its fine-tune (which starts from the new itc) are trained again
    assert [c["dir"].name for c in fake_training[2:]] == ["itc", "itc-video"]
    assert (models / "itc.previous" / "model" / "config.json").is_file()
    assert "itc/syn__retrieval.json" in summary.done


def test_a_changed_mlm_is_retrained_with_the_models_that_use_its_negatives(
    tmp_path, fake_training, monkeypatch, capsys
):
    mlm_runs = []

    def fake_train_lm(texts, out_dir, **kwargs):
        mlm_runs.append(kwargs)
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "config.json").write_text("{}")
        return Path(out_dir)

    monkeypatch.setattr("vilem.train.lm.train_lm", fake_train_lm)
    mlm = {"corpus": {"dataset": "synthetic", "split": "train", "root": str(tmp_path / "data"),
                      "options": {"config": TINY}}, "steps": 5}  # fmt: skip
    raw = seeded_spec(tmp_path, mlm=mlm)
    del raw["seeds"], raw["models"]["abl"], raw["models"]["itc-video"]
    raw["models"]["vil"] = {"train": "small-vilem"}
    Runner(parse_spec(raw), quiet=True).run()
    assert len(mlm_runs) == 1 and sorted(c["dir"].name for c in fake_training) == ["itc", "vil"]
    Runner(parse_spec(raw), quiet=True).run()  # unchanged: nothing is trained again
    assert len(mlm_runs) == 1 and len(fake_training) == 2
    raw["mlm"]["steps"] = 9
    Runner(parse_spec(raw)).run()
    out = capsys.readouterr().out
    assert "[bench] retraining the masked LM: its recipe changed" in out
    assert mlm_runs[-1]["steps"] == 9 and len(mlm_runs) == 2
    # ViLEM learns from the MLM's negatives and is retrained; ITC-only never reads it
    assert [c["dir"].name for c in fake_training[2:]] == ["vil"]
    assert (tmp_path / "out" / "models" / "_mlm.previous" / "config.json").is_file()
