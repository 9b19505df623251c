"""emoedge.core.safeyaml: configuration YAML read as hostile input."""

import pytest

from emoedge.core.safeyaml import MAX_YAML_BYTES, load_yaml_text

BOMB = "\n".join(['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
                 + [f"{c}: &{c} [{','.join(['*' + chr(ord(c) - 1)] * 9)}]" for c in "bcdefghi"]) + "\n"


def test_plain_configuration_loads_as_before():
    assert load_yaml_text("runtime:\n  model: fast\n  threads: 2\n  list: [1, 2]\n", "p.yaml") == {
        "runtime": {"model": "fast", "threads": 2, "list": [1, 2]}}
    assert load_yaml_text("", "p.yaml") is None


def test_an_alias_bomb_is_refused_at_once_naming_its_source():
    assert len(BOMB) < 500
    with pytest.raises(ValueError, match=r"bomb.yaml: .*(anchors|aliases)"):
        load_yaml_text(BOMB, "bomb.yaml")


def test_a_single_alias_or_anchor_is_refused_too():
    with pytest.raises(ValueError, match="aliases"):
        load_yaml_text("a: 1\nb: *x\n", "x.yaml")
    with pytest.raises(ValueError, match="anchors"):
        load_yaml_text("a: &x 1\n", "x.yaml")


def test_too_long_or_too_deep_or_unsafe_text_is_refused():
    with pytest.raises(ValueError, match="KiB"):
        load_yaml_text("a: " + "x" * (MAX_YAML_BYTES + 1), "big.yaml")
    with pytest.raises(ValueError, match="nested deeper"):
        load_yaml_text("[" * 100 + "]" * 100, "deep.yaml")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_yaml_text("!!python/object/apply:os.system ['true']", "evil.yaml")


def test_the_callers_error_type_is_raised():
    class ConfigError(ValueError):
        pass

    with pytest.raises(ConfigError):
        load_yaml_text(BOMB, "--set runtime.model", ConfigError)
