import pytest

from vilem.errors import ConfigError
from vilem.registry import Registry


class Base:
    pass


def test_get_returns_registered_class():
    reg: Registry[type[Base]] = Registry("thing", base=Base)

    @reg.register("alpha")
    class Alpha(Base):
        pass

    assert reg.get("alpha") is Alpha
    assert reg.names() == ["alpha"]


def test_unknown_name_suggests_the_closest():
    reg: Registry[type[Base]] = Registry("dataset", base=Base)
    reg.register("flickr30k", type("F", (Base,), {}))
    with pytest.raises(ConfigError, match="did you mean 'flickr30k'"):
        reg.get("flikr30k")


def test_duplicate_name_is_refused():
    reg: Registry[type[Base]] = Registry("thing", base=Base)
    reg.register("a", type("A", (Base,), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", type("B", (Base,), {}))


def test_base_class_is_enforced():
    reg: Registry[type[Base]] = Registry("thing", base=Base)
    with pytest.raises(TypeError, match="subclass of Base"):
        reg.register("x", int)


def test_lazy_entry_is_imported_on_first_use():
    reg: Registry = Registry("codec")
    reg.register("json_dumps", "json:dumps")
    import json

    assert reg.get("json_dumps") is json.dumps


def test_lazy_entry_that_cannot_import_gives_a_clear_error():
    reg: Registry = Registry("model")
    reg.register("ghost", "no_such_module_xyz:thing")
    with pytest.raises(ConfigError, match="'ghost' could not be loaded"):
        reg.get("ghost")
