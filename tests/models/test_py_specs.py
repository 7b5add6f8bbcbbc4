"""``py:MODULE:ATTR[:ARG]`` model specs: a module written to a temp folder on sys.path gives
RetrievalModels, duck-typed objects (wrapped and L2-normalised) and factories; bad targets are
one-line ConfigErrors that say what is wrong."""

import sys
import textwrap

import numpy as np
import pytest
import torch

from vilem.errors import ConfigError
from vilem.models import MODELS, RetrievalModel, load_model
from vilem.models.py import PyModel, import_target

PLUGIN = textwrap.dedent('''
    import numpy as np
    import torch
    import torch.nn.functional as F

    from vilem.models import RetrievalModel


    class Lengths(RetrievalModel):
        """A RetrievalModel subclass: used as it is."""

        image_size = 16

        def encode_images(self, pixels):
            return F.normalize(pixels.flatten(1)[:, :4], dim=-1)

        def encode_texts(self, texts):
            return F.normalize(torch.tensor([[len(t), 1.0, 2.0, 3.0] for t in texts]), dim=-1)

        def config(self):
            return {"name": "lengths"}


    class Duck:
        """Duck-typed: numpy outputs, not normalised."""

        image_size = 16
        mean = (0.5, 0.5, 0.5)

        def __init__(self, scale="1"):
            self.scale = float(scale)

        def encode_images(self, pixels):
            return (pixels.flatten(1)[:, :4] * self.scale).numpy()

        def encode_texts(self, texts):
            return np.array([[len(t), 1.0, 2.0, 3.0] for t in texts]) * self.scale


    def build_duck(scale="1", device="cpu"):
        duck = Duck(scale)
        duck.device = device
        return duck


    class TorchDuck(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def encode_images(self, pixels):
            return self.proj(pixels.flatten(1)[:, :4])

        def encode_texts(self, texts):
            return self.proj(torch.ones(len(texts), 4))


    duck = Duck()
    answer = 42


    def wrong():
        return answer


    def no_arguments():
        return Duck()


    def bad_shape():
        class Flat(Duck):
            def encode_texts(self, texts):
                return np.ones(len(texts))

        return Flat()
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The module name of a fresh copy of PLUGIN, importable for this test only."""
    name = f"vilem_test_plugin_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_retrieval_model_class_is_instantiated_and_used_as_is(plugin):
    model = load_model(f"py:{plugin}:Lengths")
    assert type(model).__name__ == "Lengths" and isinstance(model, RetrievalModel)
    assert model.encode_texts(["ab"]).shape == (1, 4)


def test_a_duck_typed_factory_gets_its_argument_and_device_and_is_normalised(plugin):
    model = load_model(f"py:{plugin}:build_duck:2.5", device="cuda:7")  # only recorded
    assert isinstance(model, PyModel)
    assert model.obj.scale == 2.5 and model.device == "cuda:7"
    texts = model.encode_texts(["a red circle", "ab"])
    assert texts.dtype == torch.float32
    torch.testing.assert_close(texts.norm(dim=-1), torch.ones(2))
    expected = torch.tensor([12.0, 1, 2, 3]) / torch.tensor([12.0, 1, 2, 3]).norm()
    torch.testing.assert_close(texts[0], expected)
    images = model.encode_images(torch.rand(3, 3, 16, 16))
    torch.testing.assert_close(images.norm(dim=-1), torch.ones(3))
    # the object's own attributes drive the default preprocessing
    assert model.image_size == 16 and model.mean == (0.5, 0.5, 0.5)
    assert model.preprocess(np.zeros((1, 20, 20, 3), np.uint8)).shape == (1, 3, 16, 16)
    config = model.config()
    assert config["target"] == f"{plugin}:build_duck:2.5" and config["class"].endswith("Duck")


def test_an_object_in_a_module_is_used_without_a_call(plugin):
    model = load_model(f"py:{plugin}:duck")
    assert isinstance(model, PyModel) and model.obj.scale == 1.0
    assert import_target(f"{plugin}:duck:ignored").scale == 1.0  # pre-flight: import only


def test_fingerprint_follows_weights_and_source(plugin, tmp_path):
    a, b = load_model(f"py:{plugin}:TorchDuck"), load_model(f"py:{plugin}:TorchDuck")
    assert a.weights_digest() and a.fingerprint() != b.fingerprint()  # two random inits
    with torch.no_grad():
        b.obj.proj.load_state_dict(a.obj.proj.state_dict())
    assert a.fingerprint() == b.fingerprint()
    before = load_model(f"py:{plugin}:duck").fingerprint()
    path = tmp_path / f"{plugin}.py"
    path.write_text(path.read_text() + "\n# edited\n")
    assert load_model(f"py:{plugin}:duck").fingerprint() != before  # the cache cannot go stale


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:build", "no module named 'no_such_module_xyz'"),
        ("{plugin}.sub:build", "no module named '{plugin}.sub'"),
        ("{plugin}:biuld_duck", "has no attribute 'biuld_duck' (did you mean 'build_duck'?)"),
        ("{plugin}:wrong", "returned int, expected a RetrievalModel or an object with"),
        ("{plugin}:answer", "is int, expected"),
        ("{plugin}:no_arguments:x", "cannot be called with one argument"),
        ("{plugin}:duck:x", "is a model, not a callable taking :x"),
        ("{plugin}", "expected py:MODULE:ATTR"),
        ("", "expected py:MODULE:ATTR"),
    ],
)
def test_bad_targets_are_one_clear_line(plugin, target, message):
    with pytest.raises(ConfigError) as exc:
        load_model(f"py:{target.format(plugin=plugin)}")
    assert message.format(plugin=plugin) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_module_whose_own_import_fails_is_named(tmp_path, monkeypatch):
    (tmp_path / "vilem_test_broken.py").write_text("import vilem_missing_dependency\n")
    (tmp_path / "vilem_test_syntax.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="importing vilem_test_broken failed: No module named"):
        load_model("py:vilem_test_broken:build")
    with pytest.raises(ConfigError, match="importing vilem_test_syntax failed"):
        load_model("py:vilem_test_syntax:build")
    (tmp_path / "vilem_test_raises.py").write_text("X = 1\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(ConfigError) as exc:
        load_model("py:vilem_test_raises:build")
    where = tmp_path / "vilem_test_raises.py"
    assert str(exc.value).endswith(
        f"importing vilem_test_raises raised RuntimeError: no GPU here ({where}, line 2)"
    )


def test_outputs_that_are_not_embeddings_are_refused(plugin):
    model = load_model(f"py:{plugin}:bad_shape")
    with pytest.raises(ConfigError, match=r"encode_texts returned .* of shape \(2,\)"):
        model.encode_texts(["a", "b"])


def test_py_is_a_registered_builder():
    assert "py" in MODELS.names()


def test_the_current_folder_is_searched_as_python_m_does(tmp_path, monkeypatch):
    (tmp_path / "vilem_test_cwd_plugin.py").write_text(
        "from vilem.models.random import RandomModel as build\n"
    )
    monkeypatch.chdir(tmp_path)
    # the `vilem` console script has neither '' nor the current folder on sys.path
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert type(load_model("py:vilem_test_cwd_plugin:build")).__name__ == "RandomModel"
