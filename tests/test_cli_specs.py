"""Bad model and dataset specs through `vilem eval`, as a user meets them: exit code 2 and
exactly one line on stderr, no traceback (in-process with the real file descriptors captured,
and once in a real process)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vilem.cli import main
from vilem.data.synthetic import SyntheticConfig, generate

PLUGIN = "def wrong():\n    return 42\n\n\ndef not_a_split(split, root=None):\n    return [split]\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Synthetic data, a plug-in module and the bad model files the cases name."""
    root = tmp_path_factory.mktemp("specs")
    small = SyntheticConfig(images_train=2, images_val=2, images_test=4, videos_train=2,
                            videos_val=2, videos_test=2)  # fmt: skip
    generate(root / "synthetic", small, seed=0)
    (root / "vilem_cli_plugin.py").write_text(PLUGIN)
    torch.save({"state_dict": {}}, root / "weights.pt")
    (root / "oc-empty").mkdir()
    (root / "oc-empty" / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    for name in ("hf-empty", "hf-pickle"):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps({"model_type": "clip"}))
    torch.save({}, root / "hf-pickle" / "pytorch_model.bin")
    return root


CASES = [
    (["--model", "py:vilem_cli_missing:build"], "no module named 'vilem_cli_missing'"),
    (["--model", "py:vilem_cli_plugin:wronk"], "(did you mean 'wrong'?)"),
    (["--model", "py:vilem_cli_plugin:wrong"], "returned int, expected a RetrievalModel"),
    (["--model", "open-clip:ViT-B-3:{root}/w.safetensors"], "(did you mean 'ViT-B-32'?)"),
    (["--model", "open-clip:ViT-B-32:{root}/weights.pt"], "which vilem never unpickles"),
    (["--model", "open-clip:{root}/oc-empty"], "has no weights (open_clip_model.safetensors)"),
    (["--model", "hf-clip:{root}/hf-empty"], "has no weights (model.safetensors)"),
    (["--model", "hf:{root}/hf-pickle"], "only pickle weights (pytorch_model.bin)"),
    (["--model", "random", "--dataset", "py:vilem_cli_missing:Data"],
     "dataset spec 'py:vilem_cli_missing:Data': no module named 'vilem_cli_missing'"),
    (["--model", "random", "--dataset", "py:vilem_cli_plugin:not_a_split"],
     "returned list, expected a vilem.data.Split"),
]  # fmt: skip


def _argv(files: Path, args: list[str]) -> list[str]:
    argv = ["eval", *(a.format(root=files) for a in args)]
    if "--dataset" not in argv:
        argv += ["--dataset", "synthetic"]
    return [*argv, "--root", str(files / "synthetic"), "--quiet", "--workers", "0"]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_bad_spec_is_exit_2_and_one_line(files, args, message, capfd, monkeypatch):
    monkeypatch.syspath_prepend(str(files))
    monkeypatch.chdir(files)  # nothing may be written, least of all in the repository
    code = main(_argv(files, args))
    out = capfd.readouterr()
    assert code == 2
    assert out.err.startswith("vilem: error: ") and message in out.err
    assert out.err.count("\n") == 1 and "Traceback" not in out.err
    assert not (files / "runs").exists()


def test_bad_spec_in_a_real_process(files):
    args = ["--model", "py:vilem_cli_plugin:wrong"]
    done = subprocess.run([sys.executable, "-m", "vilem", *_argv(files, args)], cwd=files,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "returned int" in done.stderr, done.stderr
