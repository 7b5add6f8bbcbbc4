"""The `vilem` command as a user meets it: end-to-end runs and one-line errors for bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from vilem import metrics as M
from vilem.cli import main
from vilem.data.synthetic import SyntheticConfig, generate

SMALL = SyntheticConfig(
    images_train=8, images_val=4, images_test=12, videos_train=4, videos_val=2, videos_test=6
)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synthetic"
    generate(root, SMALL, seed=0)
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_writes_result_and_embeddings_that_reproduce_the_metrics(
    synthetic_root, tmp_path, capsys
):
    out, emb = tmp_path / "r.json", tmp_path / "emb"
    code, stdout, _ = run(
        capsys, "eval", "--model", "random", "--dataset", "synthetic", "--root", synthetic_root,
        "--out", out, "--save-embeddings", emb, "--quiet", "--workers", "0",
    )  # fmt: skip
    assert code == 0
    assert "rsum" in stdout and "12 items, 60 texts" in stdout
    result = json.loads(out.read_text())
    assert result["schema"] == "vilem.result" and result["task"] == "retrieval"
    assert result["dataset"]["counts"] == {"items": 12, "texts": 60, "skipped_items": 0}
    assert len(result["per_query"]["t2i_ranks"]) == 60
    # the saved embeddings alone recompute every metric
    index = json.loads((emb / "index.json").read_text())
    again = M.retrieval_metrics(
        np.load(emb / "items.npy"), np.load(emb / "texts.npy"), index["text_to_item"]
    )
    for key, value in again.items():
        assert result["metrics"][key] == pytest.approx(value)


def test_second_eval_hits_the_embedding_cache(synthetic_root, tmp_path, capsys):
    args = ["eval", "--model", "random", "--dataset", "synthetic", "--root", synthetic_root,
            "--quiet", "--workers", "0", "--cache-dir", tmp_path / "cache"]  # fmt: skip
    for name in ("a.json", "b.json"):
        assert run(capsys, *args, "--out", tmp_path / name)[0] == 0
    first = json.loads((tmp_path / "a.json").read_text())
    second = json.loads((tmp_path / "b.json").read_text())
    assert first["extra"]["cache"] == {"hits": 0, "misses": 2}
    assert second["extra"]["cache"] == {"hits": 2, "misses": 0}
    assert first["metrics"] == second["metrics"]


def test_probe_task_on_synthetic_videos(synthetic_root, tmp_path, capsys):
    out = tmp_path / "p.json"
    code, stdout, _ = run(
        capsys, "eval", "--model", "random", "--dataset", "synthetic-video", "--root",
        synthetic_root, "--task", "probe", "--out", out, "--quiet", "--workers", "0",
    )  # fmt: skip
    assert code == 0, stdout
    metrics = json.loads(out.read_text())["metrics"]
    assert "acc_direction" in metrics and 0 <= metrics["macro"] <= 100


def _flickr_root(tmp_path: Path) -> Path:
    """A Karpathy-format Flickr30K test split of 4 images: one corrupt, one missing."""
    from PIL import Image

    root = tmp_path / "flickr30k"
    (root / "flickr30k-images").mkdir(parents=True)
    images = []
    for i in range(4):
        name = f"{1000 + i}.jpg"
        images.append({
            "filename": name, "imgid": i, "split": "test", "sentids": [2 * i, 2 * i + 1],
            "sentences": [{"raw": f"picture {i} caption {k}", "tokens": [], "imgid": i,
                           "sentid": 2 * i + k} for k in range(2)],
        })  # fmt: skip
        if i != 3:
            Image.new("RGB", (20, 16), (40 * i, 80, 120)).save(root / "flickr30k-images" / name)
    (root / "flickr30k-images" / "1002.jpg").write_bytes(b"not a jpeg")
    (root / "dataset_flickr30k.json").write_text(
        json.dumps({"images": images, "dataset": "flickr30k"})
    )
    return root


def test_corrupt_media_stops_with_one_line_then_skip_bad_media_records_it(tmp_path, capsys):
    root = _flickr_root(tmp_path)
    base = ["eval", "--model", "random", "--dataset", "flickr30k", "--root", root, "--quiet",
            "--workers", "0", "--no-cache"]  # fmt: skip
    code, _, err = run(capsys, *base)
    assert code == 2
    assert err.startswith("vilem: error: 2 of 4 images in flickr30k/test")
    # one line: the count, the first bad file and the flag to pass
    assert "the first: image" in err and "1002.jpg" in err and "--skip-bad-media" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    code, _, _ = run(capsys, *base, "--skip-bad-media", "--out", tmp_path / "r.json")
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["dataset"]["counts"] == {"items": 2, "texts": 4, "skipped_items": 2}
    assert result["dataset"]["skipped_ids"] == ["1002", "1003"]


def test_existing_result_survives_a_failed_run(tmp_path, capsys):
    root = _flickr_root(tmp_path)
    out = tmp_path / "r.json"
    out.write_text('{"keep": true}')
    code, _, _ = run(capsys, "eval", "--model", "random", "--dataset", "flickr30k", "--root",
                     root, "--quiet", "--workers", "0", "--out", out)  # fmt: skip
    assert code == 2 and json.loads(out.read_text()) == {"keep": True}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "randon", "--dataset", "synthetic"], "did you mean 'random'"),
        (["--model", "random", "--dataset", "cocoo"], "did you mean 'coco'"),
        (["--model", "random", "--dataset", "synthetic", "--split", "tset"], "did you mean 'test'"),
        (["--model", "random", "--dataset", "coco", "--root", "/nonexistent/coco"],
         "dataset root for 'coco' not found"),
        (["--model", "hf-clip:/nonexistent", "--dataset", "synthetic"], "has no config.json"),
    ],
)  # fmt: skip
def test_bad_input_gives_one_clear_line(synthetic_root, capsys, argv, message):
    if "--root" not in argv:
        argv = [*argv, "--root", str(synthetic_root)]
    code, _, err = run(capsys, "eval", *argv, "--quiet", "--workers", "0")
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--model", "random", "--dataset", "synthetic", "--task", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_listing_commands(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and all(n in out for n in ("synthetic", "coco", "flickr30k", "msrvtt"))
    code, out, _ = run(capsys, "models")
    assert code == 0 and all(n in out for n in ("random", "hf-clip", "vilem"))


def test_a_truncated_jpeg_is_skipped_before_encoding_even_with_workers(tmp_path, capsys):
    root = _flickr_root(tmp_path)
    good = (root / "flickr30k-images" / "1001.jpg").read_bytes()
    import io

    from PIL import Image

    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="JPEG")
    (root / "flickr30k-images" / "1001.jpg").write_bytes(buf.getvalue()[:400])
    assert good != (root / "flickr30k-images" / "1001.jpg").read_bytes()
    code, _, err = run(
        capsys, "eval", "--model", "random", "--dataset", "flickr30k", "--root", root, "--quiet",
        "--workers", "1", "--no-cache", "--skip-bad-media", "--out", tmp_path / "r.json",
    )  # fmt: skip
    assert code == 0, err
    skipped = json.loads((tmp_path / "r.json").read_text())["dataset"]["skipped_ids"]
    assert skipped == ["1001", "1002", "1003"]


def test_every_item_skipped_is_one_clear_line(tmp_path, capsys):
    root = _flickr_root(tmp_path)
    for name in ("1000.jpg", "1001.jpg"):
        (root / "flickr30k-images" / name).write_bytes(b"junk")
    code, _, err = run(
        capsys, "eval", "--model", "random", "--dataset", "flickr30k", "--root", root, "--quiet",
        "--workers", "0", "--no-cache", "--skip-bad-media",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("vilem: error: all 4 images of flickr30k/test were skipped")


def test_save_embeddings_needs_the_retrieval_task(synthetic_root, tmp_path, capsys):
    code, _, err = run(
        capsys, "eval", "--model", "random", "--dataset", "synthetic", "--root", synthetic_root,
        "--task", "probe", "--save-embeddings", tmp_path / "emb", "--quiet", "--workers", "0",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "--save-embeddings needs --task retrieval" in err
    assert not (tmp_path / "emb").exists()


EVAL = ["eval", "--model", "random", "--dataset", "synthetic"]


@pytest.mark.parametrize(
    ("command", "flag", "value", "words"),
    [
        (EVAL, "--frames", "0", "positive"),
        (EVAL, "--frames", "-3", "positive"),
        (EVAL, "--batch-size", "0", "positive"),
        (EVAL, "--workers", "-1", "non-negative"),
        (EVAL, "--bootstrap", "-1", "non-negative"),
        (EVAL, "--seed", "-1", "non-negative"),
        (EVAL, "--frames", "two", "positive"),
        (["data", "synthetic"], "--seed", "-2", "non-negative"),
        (["train", "--config", "small-itc"], "--max-steps", "0", "positive"),
        (["train-lm", "--out", "x"], "--steps", "0", "positive"),
        (["train-lm", "--out", "x"], "--batch-size", "-8", "positive"),
        (["train-lm", "--out", "x"], "--heads", "0", "positive"),
        (["train-lm", "--out", "x"], "--lr", "-1e-3", "positive"),
        (["train-lm", "--out", "x"], "--lr", "nan", "positive"),
    ],
)  # fmt: skip
def test_out_of_range_numbers_are_argparse_errors(capsys, command, flag, value, words):
    with pytest.raises(SystemExit) as exc:
        main([*command, f"{flag}={value}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"error: argument {flag}: must be a {words} " in err and repr(value) in err
    assert err.strip().splitlines()[-1].startswith("vilem ")  # argparse's usage + one line


def _preflight_cases(tmp_path: Path, synthetic_root: Path) -> list[tuple[list, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "results" / "m").mkdir(parents=True)
    ev = ["eval", "--model", "random", "--dataset", "synthetic", "--root", synthetic_root,
          "--quiet", "--workers", "0"]  # fmt: skip
    return [
        ([*ev, "--out", tmp_path / "a-dir"], "--out {}/a-dir is a folder; give a file path"),
        ([*ev, "--out", a_file / "r.json"], "--out {}/a-file/r.json: {}/a-file is a file"),
        ([*ev, "--save-embeddings", a_file], "--save-embeddings {}/a-file is a file, not a"),
        ([*ev, "--cache-dir", a_file / "c"], "--cache-dir {}/a-file/c: {}/a-file is a file"),
        (["train", "--config", "small-itc", "--out", a_file], "--out {}/a-file is a file"),
        (["train-lm", "--out", a_file / "lm"], "--out {}/a-file/lm: {}/a-file is a file"),
        (["bench", "--quick", "--out", a_file], "--out {}/a-file is a file"),
        (["bench", "--quick", "--out", tmp_path / "b", "--report", a_file], "--report {}/a-file"),
        (["report", tmp_path / "results", "--out", a_file], "--out {}/a-file is a file"),
        (["leaderboard", tmp_path / "results", "--out", tmp_path / "a-dir"], "is a folder"),
        (
            [
                "compare",
                tmp_path / "results",
                "--model",
                "m",
                "--baseline",
                "b",
                "--out",
                a_file / "c.json",
            ],
            "--out {}/a-file/c.json: {}/a-file is a file",
        ),  # fmt: skip
    ]


def test_unwritable_outputs_are_refused_before_any_work(synthetic_root, tmp_path, capsys):
    import vilem.bench.runner
    import vilem.data
    import vilem.report.report
    import vilem.train.lm
    import vilem.train.loop

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the output check")

    patch = pytest.MonkeyPatch()
    for module, name in [(vilem.data, "load_split"), (vilem.train.loop, "train"),
                         (vilem.train.lm, "train_lm"), (vilem.bench.runner.Runner, "run"),
                         (vilem.report.report, "build_report")]:  # fmt: skip
        patch.setattr(module, name, no_work)
    try:
        for argv, message in _preflight_cases(tmp_path, synthetic_root):
            code, _, err = run(capsys, *argv)
            assert code == 2, (argv, err)
            assert message.format(tmp_path, tmp_path) in err, err
            assert err.count("\n") == 1 and "Traceback" not in err
    finally:
        patch.undo()
    assert (tmp_path / "a-file").read_text() == "x" and not (tmp_path / "b").exists()
