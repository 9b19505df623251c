"""Model cards (emoedge.convert.modelcard): front matter model hubs read, the files beside them, a card rewritten true
to its folder."""

import json
import re

import pytest
import yaml

from emoedge.core.shipped import MODELS_DIR, SHIPPED


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n"), "the card does not start with front matter"
    head, sep, _ = text[4:].partition("\n---\n")
    assert sep, "the front matter has no closing --- line"
    return yaml.safe_load(head)


def _shipped_card(name: str) -> str:
    """The text of a shipped model's card (the test skips a model not shipped)."""
    card = MODELS_DIR / f"{name}.md"
    if not card.is_file():
        pytest.skip(f"{name} is not shipped")
    return card.read_text()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_cards_have_front_matter_that_model_hubs_read(name):
    from emoedge.convert.modelcard import DATA_FACTS, front_matter, read_front_matter

    text = _shipped_card(name)
    meta = _front_matter(text)
    assert meta == read_front_matter(text)
    data_format = {"ferplus8": "ferplus", "ferplus7": "ferplus7"}.get(name, "fer2013")   # FER+ labels
    facts = DATA_FACTS[data_format]
    assert meta["license"] == "mit" and meta["datasets"] == [facts["id"]] and meta["metrics"] == ["accuracy"]
    assert meta["pipeline_tag"] == "image-classification" and meta["library_name"] == "emoedge"
    assert meta["tags"][0] == "emotion-recognition" and meta["tags"][-1] == "edge"
    ev = {**json.loads((MODELS_DIR / f"{name}.eval.json").read_text()), **_headline_record(text)}
    result = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == name
    assert result["dataset"] == {"type": facts["id"], "name": facts["name"], "split": ev["split"]}
    acc = result["metrics"][0]
    assert acc["type"] == "accuracy" and acc["value"] == round(ev["accuracy"], 4)
    assert f"**Top-1 accuracy {acc['value']:.2%}**" in text            # the value the card states
    files = re.findall(r"`([^`]+)` \(\d+ KiB\)", next(ln for ln in text.splitlines() if ln.startswith("- Files: ")))
    assert ("tflite" in meta["tags"]) == any(f.endswith(".tflite") for f in files)
    assert ("int8" in meta["tags"]) == any(".int8." in f for f in files)
    # exactly what the generator writes for these values, and the card's text below it unchanged
    assert text.startswith(front_matter(name, ev, files, data_format) + "\n# Model card: `" + name + "`\n")


def _headline_record(card: str) -> dict:
    """The headline's file and accuracy as the card's other records state them: the quantization table's
    row of an int8 file, or the evaluation record (NAME.eval.json) of the file it is of."""
    model = re.search(r"^- \*\*Top-1 accuracy [^\n]*; model `([^`]+)`\)\.$", card, re.M)[1]
    row = re.search(rf"^\| `{re.escape(model)}` \| \w+ \| \d+ \| ([0-9.]+) \|", card, re.M)
    return {"model": model, **({"accuracy": float(row[1])} if row else {})}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_cards_list_the_files_beside_them_and_headline_the_int8_file(name):
    from emoedge.convert.modelcard import read_front_matter, shipped_files

    text = _shipped_card(name)
    line = next(ln for ln in text.splitlines() if ln.startswith("- Files: "))
    assert re.findall(r"`([^`]+)` \(\d+ KiB\)", line) == list(shipped_files(MODELS_DIR, name))
    head = _headline_record(text)
    value = read_front_matter(text)["model-index"][0]["results"][0]["metrics"][0]["value"]
    if (MODELS_DIR / f"{name}.int8.tflite").is_file():
        assert head["model"] == f"{name}.int8.tflite" and value == pytest.approx(head["accuracy"], abs=1e-4)
    else:  # hoglbp: its one file, scored in its evaluation record
        ev = json.loads((MODELS_DIR / f"{name}.eval.json").read_text())
        assert head["model"] == ev["model"] and value == round(ev["accuracy"], 4)


def _card(ev, files):
    from emoedge.convert.modelcard import render_model_card

    run = {"config": {"arch": "hog_lbp", "val_fraction": 0.1}, "class_names": ["a", "b"], "train_seconds": 3,
           "preprocessing": {"name": "gray48-unit"}, "val": {"accuracy": 0.6},
           "data": {"train_items": 90, "val_items": 10, "fingerprint_sha256": "0" * 64}}
    return render_model_card("m", "test", run, ev, files, "emoedge models ship", {"Quantization": "q table"})


def _ev(model, acc, cm):
    pc = {"precision": 1, "recall": 1, "f1": 1, "support": 5}
    return {"model": model, "split": "PublicTest", "n": 10, "accuracy": acc, "macro_f1": 0.5, "class_names": ["a", "b"],
            "per_class": {"a": pc, "b": {**pc, "recall": 0.4}}, "confusion_matrix": cm}


def test_a_card_is_rewritten_true_to_its_folder_and_its_int8_file(tmp_path):
    from emoedge.convert.modelcard import headline_file, read_front_matter, shipped_files, with_files, with_results

    for f, size in (("m.keras", 4096), ("m.tflite", 4096), ("m.int8.tflite", 1024), ("m.int8.tflite.json", 9),
                    ("m.eval.json", 9), ("m.md", 9), ("m.recipe.yaml", 9), ("other.int8.tflite", 9)):
        (tmp_path / f).write_bytes(b"x" * size)
    assert shipped_files(tmp_path, "m") == {"m.int8.tflite": 1024, "m.keras": 4096, "m.tflite": 4096}
    assert headline_file(shipped_files(tmp_path, "m"), "m.tflite") == "m.int8.tflite"
    assert headline_file({"m.hoglbp.npz": 1}, "m.hoglbp.npz") == "m.hoglbp.npz"
    old = _card(_ev("m.tflite", 0.7, [[5, 0], [0, 5]]), shipped_files(tmp_path, "m"))
    (tmp_path / "m.keras").unlink()
    (tmp_path / "m.tflite").unlink()
    new = with_results(old, "m", _ev("m.int8.tflite", 0.6, [[5, 0], [3, 2]]), shipped_files(tmp_path, "m"))
    assert "- Files: `m.int8.tflite` (1 KiB)." in new and "m.keras" not in new
    assert "- **Top-1 accuracy 60.00%**, macro-F1 0.5000 (n=10; model `m.int8.tflite`)." in new
    assert "| b | 1.000 | 0.400 | 1.000 | 5 |" in new and "| b | 3 | 2 |" in new and "| b | 0 | 5 |" not in new
    assert read_front_matter(new)["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.6
    assert "- Validation accuracy 60.00%." in new and "## Quantization\n\nq table" in new   # the rest kept
    assert len(new.splitlines()) == len(old.splitlines())
    only = with_files(old, {"m.int8.tflite": 1024})
    assert read_front_matter(only)["tags"] == ["emotion-recognition", "tflite", "int8", "edge"]
    assert "- Files: `m.int8.tflite` (1 KiB)." in only and "Top-1 accuracy 70.00%" in only


def test_render_model_card_starts_with_front_matter():
    from emoedge.convert.modelcard import read_front_matter, render_model_card

    names = ["a", "b"]
    ev = {"model": "x.tflite", "split": "PublicTest", "n": 10, "accuracy": 0.61234, "macro_f1": 0.5,
          "class_names": names, "per_class": {n: {"precision": 1, "recall": 1, "f1": 1, "support": 5} for n in names},
          "confusion_matrix": [[5, 0], [0, 5]]}
    run = {"config": {"arch": "hog_lbp", "val_fraction": 0.1}, "class_names": names, "train_seconds": 3,
           "preprocessing": {"name": "gray48-unit"}, "val": {"accuracy": 0.6},
           "data": {"train_items": 90, "val_items": 10, "fingerprint_sha256": "0" * 64}}
    card = render_model_card("hoglbp", "test", run, ev, {"x.int8.tflite": 1024}, "emoedge models ship")
    meta = read_front_matter(card)
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.6123
    assert meta["tags"] == ["emotion-recognition", "tflite", "int8", "edge"]
    assert "\n---\n\n# Model card: `hoglbp`\n" in card
    assert "| true \\ predicted | a | b |\n|---|---:|---:|\n| a | 5 | 0 |" in card
