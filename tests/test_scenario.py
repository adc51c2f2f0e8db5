import pytest

from leaklab import scenario as sc


def write(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return path


def test_smallest_scenario_is_just_a_step(tmp_path):
    path = write(tmp_path, "tiny", '"""Tiny one."""\ndef step(state):\n    pass\n')
    loaded = sc.load(path)
    assert loaded.name == "tiny"
    assert loaded.description == "Tiny one."
    assert loaded.variants == {} and loaded.params == {}
    assert loaded.setup is None and loaded.teardown is None
    assert not loaded.is_async


def test_missing_step_is_a_clear_error(tmp_path):
    path = write(tmp_path, "nostep", "def setup():\n    return {}\n")
    with pytest.raises(sc.ScenarioError, match="defines no step"):
        sc.load(path)


def test_import_error_is_reported(tmp_path):
    path = write(tmp_path, "broken", "import not_a_module_anywhere\ndef step(s): pass\n")
    with pytest.raises(sc.ScenarioError, match="importing .* failed: ModuleNotFoundError"):
        sc.load(path)
    assert "cannot load" in sc.describe(path)["description"]


def test_variants_params_and_overrides(tmp_path):
    path = write(
        tmp_path,
        "rich_one",
        '''"""Rich."""
from leaklab import Param
VARIANTS = {
    "leaky": "keeps",
    "seed": {"doc": "incident", "params": {"size": "2.2KB"}, "rate": "37/s"},
}
PARAMS = {
    "size": Param(1024, kind="size", help="bytes"),
    "n": 3,
    "ratio": 0.5,
    "flag": False,
    "name": "x",
    "mode": Param("a", choices=("a", "b")),
}
async def step(state):
    pass
''',
    )
    loaded = sc.load(path)
    assert loaded.is_async
    assert loaded.default_variant == "leaky"
    assert loaded.resolve_params("leaky", {})["size"] == 1024
    assert loaded.resolve_params("seed", {})["size"] == 2200
    assert loaded.default_rate("seed") == "37/s"
    values = loaded.resolve_params(
        "leaky", {"size": "4KB", "n": "7", "ratio": "0.25", "flag": "yes", "mode": "b"}
    )
    assert values == {"size": 4000, "n": 7, "ratio": 0.25, "flag": True, "name": "x", "mode": "b"}
    with pytest.raises(
        sc.ScenarioError,
        match="no parameter 'nn'; known parameters: size, n, ratio, flag, name, mode",
    ):
        loaded.resolve_params("leaky", {"nn": "1"})
    with pytest.raises(sc.ScenarioError, match="'n': expected an integer"):
        loaded.resolve_params("leaky", {"n": "three"})
    with pytest.raises(sc.ScenarioError, match="accepted forms"):
        loaded.resolve_params("leaky", {"size": "huge"})
    with pytest.raises(sc.ScenarioError, match="not one of a, b"):
        loaded.resolve_params("leaky", {"mode": "c"})
    with pytest.raises(sc.ScenarioError, match="known variants: leaky, seed"):
        loaded.resolve_variant("fixed")


def test_variant_aliases(tmp_path):
    body = (
        '"""A."""\nVARIANTS = {"listeners": {"doc": "d", "aliases": ["leaky"]}, "fixed": "f"}\n'
        "def step(s): pass\n"
    )
    loaded = sc.load(write(tmp_path, "aliased", body))
    assert (
        loaded.resolve_variant("leaky") == "listeners"
        and loaded.resolve_variant("fixed") == "fixed"
    )
    assert sc.describe(loaded.path)["aliases"] == {"leaky": "listeners"}
    with pytest.raises(sc.ScenarioError, match="known variants: listeners, fixed"):
        loaded.resolve_variant("other")
    clash = '"""A."""\nVARIANTS = {"a": {"aliases": "fixed"}, "fixed": "f"}\ndef step(s): pass\n'
    with pytest.raises(sc.ScenarioError, match="alias 'fixed' of variant 'a'"):
        sc.load(write(tmp_path, "clash", clash))


def test_setup_receives_what_it_names(tmp_path):
    path = write(
        tmp_path,
        "kw",
        "PARAMS = {'size': 1, 'n': 2}\nVARIANTS = ['a', 'b']\n"
        "def setup(variant, size):\n    return (variant, size)\ndef step(s): pass\n",
    )
    loaded = sc.load(path)
    assert loaded.setup_kwargs("b", {"size": 5, "n": 2}) == {"variant": "b", "size": 5}


def test_find_by_name_dash_or_underscore_and_env(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    write(folder, "my_leak", "def step(s): pass\n")
    monkeypatch.setenv(sc.ENV_VAR, str(folder))
    assert sc.find("my-leak").name == "my_leak.py"
    assert sc.find("my_leak").name == "my_leak.py"
    monkeypatch.delenv(sc.ENV_VAR)
    assert sc.find("my-leak", [folder]).name == "my_leak.py"


def test_unknown_scenario_lists_known_ones(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    write(folder, "alpha", "def step(s): pass\n")
    with pytest.raises(sc.ScenarioError, match="known scenarios: .*alpha"):
        sc.find("beta", [folder])


def test_param_overrides_syntax():
    assert sc.parse_param_overrides(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(sc.ScenarioError, match="name=value"):
        sc.parse_param_overrides(["novalue"])
