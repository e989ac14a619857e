"""The published DNABERT-S tokenizer.json, as it comes, gives the reference's tokens.

`tests/data/published-dnabert-s/` holds DNABERT-S's text files as published: its tokenizer.json
carries truncation at 2000, fixed padding to 2000 with [PAD]=3 and a `byte_fallback` field.
The reference ran the tokenizer through transformers with default arguments (no truncation, no
padding), so the ids must be those of `tests/data/dnabert-s-tokenizer.json`, the same
vocabulary saved without those settings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from virnucpro.errors import ModelError
from virnucpro.models.dnabert import DnaBertConfig
from virnucpro.models.dnabert_io import embed_dna_batch, load_dnabert
from virnucpro.models.dnabert_tokenizer import SPECIAL_TOKENS, read_tokenizer, tokenize_dna
from virnucpro.models.tiny.dnabert import tiny_state_dict, write_dnabert

DATA = Path(__file__).resolve().parents[1] / "data"
PUBLISHED = DATA / "published-dnabert-s"
PLAIN = DATA / "dnabert-s-tokenizer.json"
SEP, PAD = SPECIAL_TOKENS["[SEP]"], SPECIAL_TOKENS["[PAD]"]


def _published_config() -> DnaBertConfig:
    return DnaBertConfig.from_json(PUBLISHED / "config.json")


def _phix() -> str:
    """phiX174's genome (5,386 bp), the first record of the bundled viral FASTA."""
    text = (DATA / "viral_reference.fasta").read_text().split(">")[1]
    return "".join(text.splitlines()[1:])


def test_the_published_file_carries_the_settings_this_test_is_about() -> None:
    raw = json.loads((PUBLISHED / "tokenizer.json").read_text())
    assert raw["truncation"]["max_length"] == 2000
    assert raw["padding"]["strategy"] == {"Fixed": 2000} and raw["padding"]["pad_id"] == PAD
    assert "byte_fallback" in raw["model"]
    # Loaded as a plain tokenizers file, it pads: what the loader must undo.
    assert Tokenizer.from_file(str(PUBLISHED / "tokenizer.json")).encode("ACGT").ids[-1] == PAD


@pytest.mark.parametrize("case", ["500 bp chunk", "over 2000 tokens", "mixed batch"])
def test_published_tokenizer_gives_the_ids_of_the_same_vocabulary_without_settings(
        case: str) -> None:
    published = read_tokenizer(PUBLISHED / "tokenizer.json", _published_config())
    plain = Tokenizer.from_file(str(PLAIN))
    assert plain.truncation is None and plain.padding is None
    genome = _phix()
    batch = {
        "500 bp chunk": [genome[1000:1500]],
        "over 2000 tokens": [genome + genome[::-1] + genome],  # 16 kbp
        "mixed batch": [genome[:120], genome[500:1000], genome[2000:2299], "acgtnnACGT", "A"],
    }[case]
    ids = tokenize_dna(published, batch)
    assert ids == tokenize_dna(plain, batch)
    for row in ids:
        assert row[0] == SPECIAL_TOKENS["[CLS]"] and row[-1] == SEP
        assert PAD not in row
    if case == "over 2000 tokens":
        assert len(ids[0]) > 2000  # not cut at the saved max_length


def test_features_with_the_published_tokenizer_equal_those_with_the_plain_one(
        tmp_path: Path) -> None:
    # The published vocabulary (4096) under small random weights: what matters is the tokens.
    config = DnaBertConfig(vocab_size=4096, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=4, intermediate_size=64)
    folders = []
    for name, source in (("published", PUBLISHED / "tokenizer.json"), ("plain", PLAIN)):
        folder = tmp_path / name
        write_dnabert(folder, config, tiny_state_dict(config, seed=3), Tokenizer.from_file(
            str(PLAIN)))
        shutil.copyfile(source, folder / "tokenizer.json")
        folders.append(load_dnabert(folder))
    genome = _phix()
    batch = [genome[:500], genome[600:900], genome[:2500]]
    features = [embed_dna_batch(b, tokenize_dna(b.tokenizer, batch)) for b in folders]
    assert torch.equal(features[0], features[1])


def test_a_tokenizer_that_pads_through_its_template_is_refused(tmp_path: Path) -> None:
    raw = json.loads((PUBLISHED / "tokenizer.json").read_text())
    single = raw["post_processor"]["single"]
    single.append({"SpecialToken": {"id": "[PAD]", "type_id": 0}})
    single[-2], single[-1] = single[-1], single[-2]  # ... [PAD] [SEP]: still ends in [SEP]
    raw["post_processor"]["special_tokens"]["[PAD]"] = {"id": "[PAD]", "ids": [PAD],
                                                         "tokens": ["[PAD]"]}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="pads a sequence") as err:
        read_tokenizer(path, _published_config())
    assert str(path) in str(err.value)


def test_a_tokenizer_that_is_not_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_bytes(b"\x00\x01 not json")
    with pytest.raises(ModelError, match="unreadable tokenizer") as err:
        read_tokenizer(path, _published_config())
    assert str(err.value).count(str(path)) == 1  # named once, not wrapped twice
