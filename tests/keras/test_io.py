"""A model file is data: a Keras file whose layers carry Python code (a Lambda layer) is refused
before that code runs, by the loader and by every command that loads a .keras file."""

import pytest
from testdata import face_like, write_fer_csv

from emoedge.cli import main
from emoedge.core.errors import ModelError


@pytest.fixture
def evil(tmp_path):
    """A 48x48 classifier whose Lambda layer writes ``marker`` whenever it is called (at load)."""
    import keras

    marker = tmp_path / "ran.txt"
    code = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # noqa: S307  (the attack under test)
    inp = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(code)(inp)
    out = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(x))
    path = tmp_path / "evil.keras"
    keras.Model(inp, out).save(path)
    marker.unlink()
    return path, marker


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_loader_refuses_a_lambda_without_running_it(evil, suffix):
    import keras

    from emoedge.keras.io import load_keras

    path, marker = evil
    if suffix == ".h5":                                   # the legacy format goes through the same door
        keras.models.load_model(path, safe_mode=False).save(path.with_suffix(".h5"))
        marker.unlink()
        path = path.with_suffix(".h5")
    with pytest.raises(ModelError, match=f"evil{suffix}: refused: the model holds Python code"):
        load_keras(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", [
    ["evaluate", "--data", "{csv}"],
    ["convert", "--to", "float32", "--class-names", "a,b,c,d,e,f,g", "--out", "{out}"],
    ["explain", "--data", "{csv}", "--out", "{out}"],
    ["ensemble", "{model}", "--out", "{out}/fused.keras"],
])
def test_commands_refuse_it_with_exit_2(evil, command, tmp_path, rng, capsys):
    path, marker = evil
    imgs, labels = face_like(rng, 14, 7)
    csv = write_fer_csv(tmp_path / "d.csv", imgs, labels, ["PublicTest"] * 14)
    args = [a.format(csv=csv, out=tmp_path / "o", model=path) for a in command]
    model = [] if command[0] == "ensemble" else ["--model", str(path)]
    assert main([args[0], *model, *args[1:]]) == 2
    err = capsys.readouterr().err
    assert "evil.keras: refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_own_layers_still_load(tmp_path):
    """A model built of the project's registered layers loads in safe mode."""
    import keras

    from emoedge.keras.io import load_keras
    from emoedge.keras.layers import ChannelPool, HorizontalFlip, MeanOverViews, StackViews

    inp = keras.Input((48, 48, 1))
    x = StackViews()([inp, HorizontalFlip()(inp)])
    x = keras.layers.Flatten()(ChannelPool("max")(x))
    out = MeanOverViews(2)(keras.layers.Dense(7)(x))
    keras.Model(inp, out).save(tmp_path / "own.keras")
    assert load_keras(tmp_path / "own.keras").output_shape == (None, 7)
