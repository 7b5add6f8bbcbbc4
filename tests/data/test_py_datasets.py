"""``py:MODULE:ATTR`` dataset specs in ``load_split``: a DatasetAdapter subclass or a function
returning a Split, from a module in a temp folder on sys.path; bad targets are one line."""

import textwrap

import pytest

from vilem.data import Split, load_split
from vilem.errors import ConfigError, DataError

PLUGIN = textwrap.dedent("""
    from pathlib import Path

    from vilem.data import DatasetAdapter, Split


    def _split(name, split, root, texts):
        root = Path(root)
        items = [f"item{i}" for i in range(len(texts))]
        return Split(name, split, root, "image", items, [root / f"{i}.png" for i in items],
                     texts, list(range(len(texts))), "rev1")


    class Pairs(DatasetAdapter):
        name = "pairs"
        modality = "image"
        splits = ("test",)

        def _load(self, split):
            return _split(self.name, split, self.root, self.options.get("texts", ["a", "b"]))


    class Nameless(Pairs):
        name = None


    def pairs(split, root=None, texts=("x", "y", "z")):
        return _split("pairs-fn", split, root or ".", list(texts))


    def twice(split, root=None):
        root = Path(root or ".")
        return Split("twice", split, root, "image", ["a", "b", "a"],
                     [root / "a.png", root / "b.png", root / "a.png"], ["x", "y", "z"],
                     [0, 1, 2], "rev1")


    def wrong(split, root=None):
        return {"texts": []}


    class NotAnAdapter:
        pass
""")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    name = f"vilem_test_data_plugin_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_an_adapter_class_loads_with_root_and_options(plugin, tmp_path):
    split = load_split(f"py:{plugin}:Pairs", "test", root=tmp_path, texts=["one", "two", "3"])
    assert isinstance(split, Split) and split.dataset == "pairs"
    assert split.texts == ["one", "two", "3"] and split.root == tmp_path
    with pytest.raises(DataError, match="has no split 'val'"):
        load_split(f"py:{plugin}:Pairs", "val", root=tmp_path)  # the adapter's own checks run


def test_a_function_returning_a_split_is_called_with_split_root_and_options(plugin, tmp_path):
    split = load_split(f"py:{plugin}:pairs", "test", root=tmp_path, texts=["p", "q"])
    assert split.dataset == "pairs-fn" and split.texts == ["p", "q"] and split.split == "test"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:Pairs", "no module named 'no_such_module_xyz'"),
        ("{plugin}:Pears", "has no attribute 'Pears' (did you mean 'Pairs'?)"),
        ("{plugin}:wrong", "returned dict, expected a vilem.data.Split"),
        ("{plugin}:NotAnAdapter", "is the class {plugin}.NotAnAdapter, expected a DatasetAdapter"),
        ("{plugin}:Nameless", "Nameless sets no name, so it needs a root"),
        ("{plugin}", "expected py:MODULE:ATTR"),
    ],
)
def test_bad_dataset_targets_are_one_clear_line(plugin, target, message):
    with pytest.raises(ConfigError) as exc:
        load_split(f"py:{target.format(plugin=plugin)}", "test")
    assert message.format(plugin=plugin) in str(exc.value)
    assert str(exc.value).startswith("dataset spec 'py:") and "\n" not in str(exc.value)


def test_options_a_function_does_not_take_are_refused(plugin):
    with pytest.raises(ConfigError, match=r"cannot be called as \(split, root=..., \*\*options\)"):
        load_split(f"py:{plugin}:pairs", "test", colour="red")


def test_a_split_listing_an_item_twice_is_refused(plugin, tmp_path):
    # the item would be two gallery entries with the same media: one of them always misses
    with pytest.raises(DataError, match=r"twice/test: item 'a' is listed twice \(items 0 and 2\)"):
        load_split(f"py:{plugin}:twice", "test", root=tmp_path)
