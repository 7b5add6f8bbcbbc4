"""docs/plugins.md works as written: its example modules (the code blocks headed ``# NAME.py``)
are written to a temp folder and run through ``vilem eval`` in-process and in a real process,
its pyproject snippet becomes a real (throwaway) distribution with entry points, and its
error lines are exactly what ``vilem`` prints."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vilem.cli import main
from vilem.data.synthetic import SyntheticConfig, generate

DOC = Path(__file__).parents[1] / "docs" / "plugins.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
MODULES = ("mymodels", "mywrapper", "mydata")
FAST = ["--quiet", "--workers", "0", "--bootstrap", "0"]
PAIRS = {"red.png": "a red square", "green.png": "a green disc", "blue.png": "a blue sky"}


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(DOC.read_text()) if kind == lang]


def _files() -> dict[str, str]:
    """File name -> the doc's code for it, blocks headed by the same name joined in order."""
    files: dict[str, str] = {}
    for body in _blocks("python") + _blocks("toml"):
        first = body.splitlines()[0]
        if re.fullmatch(r"# [\w.]+\.(py|toml)", first):
            files[first[2:]] = files.get(first[2:], "") + body + "\n\n"
    return files


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The doc's modules, a my_pairs dataset of three coloured images, synthetic data."""
    root = tmp_path_factory.mktemp("plugins")
    for name, text in _files().items():
        (root / name).write_text(text)
    folder = root / "my_pairs" / "test"
    folder.mkdir(parents=True)
    colours = {"red.png": (230, 20, 20), "green.png": (20, 160, 40), "blue.png": (20, 60, 240)}
    for file, colour in colours.items():
        Image.fromarray(np.full((40, 48, 3), colour, np.uint8)).save(folder / file)
    (folder / "captions.tsv").write_text("".join(f"{f}\t{c}\n" for f, c in PAIRS.items()))
    small = SyntheticConfig(images_train=2, images_val=2, images_test=8, videos_train=2,
                            videos_val=2, videos_test=2)  # fmt: skip
    generate(root / "synthetic", small, seed=0)
    yield root
    for name in MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def on_path(workdir, monkeypatch):
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.chdir(workdir)
    return workdir


def test_the_doc_has_the_examples_this_file_runs():
    assert {"mymodels.py", "mywrapper.py", "mydata.py", "pyproject.toml"} <= set(_files())
    # the subclass itself is about ten lines
    body = _files()["mymodels.py"].split("class MeanColour")[1].split("\n\n\n")[0]
    assert len([line for line in body.splitlines() if line.strip()]) <= 12


def test_the_ten_line_model_runs_through_vilem_eval_in_process(on_path, tmp_path, capfd):
    out = tmp_path / "r.json"
    argv = ["eval", "--model", "py:mymodels:MeanColour", "--dataset", "py:mydata:my_pairs",
            "--root", "my_pairs", "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0, capfd.readouterr().err
    result = json.loads(out.read_text())
    assert result["model"]["config"]["name"] == "mean-colour"
    assert result["dataset"]["counts"]["items"] == 3
    assert result["metrics"]["t2i_R@1"] == 100.0  # each colour word finds its image
    synthetic = ["--dataset", "synthetic", "--root", "synthetic", "--split", "test", *FAST]
    assert main(["eval", "--model", "py:mymodels:MeanColour", *synthetic, "--out",
                 str(tmp_path / "s.json")]) == 0  # fmt: skip


def test_the_factory_example_takes_its_checkpoint_argument(on_path, tmp_path):
    from safetensors.torch import save_file

    import vilem

    plain = vilem.load_model("py:mywrapper:build")
    weights = {k: v + 1 for k, v in plain.obj.state_dict().items()}
    save_file(weights, tmp_path / "projector.safetensors")
    loaded = vilem.load_model(f"py:mywrapper:build:{tmp_path / 'projector.safetensors'}")
    assert loaded.weights_digest() != plain.weights_digest()
    texts = loaded.encode_texts(["a red circle", "a blue square"])
    assert texts.shape == (2, 8)
    assert main(["eval", "--model", "py:mywrapper:build", "--dataset", "synthetic", "--root",
                 "synthetic", "--out", str(tmp_path / "w.json"), *FAST]) == 0  # fmt: skip


def test_the_doc_command_works_in_a_real_process(workdir, tmp_path):
    (line,) = [ln for b in _blocks("bash") for ln in b.splitlines() if "py:mydata" in ln]
    argv = line.split()[1:]
    assert argv[:2] == ["eval", "--model"]
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "vilem", *argv, "--out", str(out), *FAST],
                          cwd=workdir, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["metrics"]["t2i_R@1"] == 100.0


def test_the_pyproject_entry_points_name_the_model_and_dataset(workdir, tmp_path):
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(_files()["pyproject.toml"])["project"]
    dist = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
        for group, entries in project["entry-points"].items()
    ))  # fmt: skip
    out = tmp_path / "r.json"
    script = (
        "import sys; from vilem.cli import main; main(['models']); main(['datasets']); "
        "sys.exit(main(['eval', '--model', 'mean-colour', '--dataset', 'my-pairs', '--root', "
        f"'my_pairs', '--split', 'test', '--out', {str(out)!r}, *{FAST!r}]))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(workdir)]))
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "images by mean colour" in done.stdout and "images with a captions.tsv" in done.stdout
    assert json.loads(out.read_text())["metrics"]["t2i_R@1"] == 100.0


def test_the_doc_error_lines_are_what_vilem_prints(on_path, capfd):
    (block,) = [b for b in _blocks("text") if "vilem: error:" in b]
    lines = block.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        spec = re.search(r"model spec '([^']+)'", line).group(1)
        code = main(["eval", "--model", spec, "--dataset", "synthetic", "--root", "synthetic",
                     *FAST])  # fmt: skip
        err = capfd.readouterr().err
        assert code == 2 and err == line + "\n"
