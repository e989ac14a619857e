"""DNABERT-S's tokenizer as the reference ran it: read from `tokenizer.json` and held to the
published one's shape, and sequences turned into token ids.

The published file carries truncation and padding at 2000 (`save_pretrained` after a padded
training run); both are dropped before the tokenizer is built, and a default-valued
`byte_fallback` too (older `tokenizers` refuse the field). A probe encoding must then give
[CLS] ... [SEP] without [PAD]. Imports no torch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from virnucpro.errors import ModelError

if TYPE_CHECKING:
    from virnucpro.models.dnabert import DnaBertConfig

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"

# The published tokenizer's special ids (DNABERT_S.md §4). Pad is [PAD]=3, not config.pad_token_id.
SPECIAL_TOKENS: dict[str, int] = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "[MASK]": 4}


def read_tokenizer(path: Path, config: DnaBertConfig) -> Tokenizer:
    if not path.is_file():
        raise ModelError("tokenizer.json not found", path=path)
    text = _inference_json(path)  # ModelError naming the file when it is not JSON
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise ModelError(f"unreadable tokenizer: {exc}", path=path) from exc
    wrong = [
        f"{tok}={tokenizer.token_to_id(tok)} (expected {want})"
        for tok, want in SPECIAL_TOKENS.items()
        if tokenizer.token_to_id(tok) != want
    ]
    if wrong:
        raise ModelError(
            "tokenizer special ids differ from DNABERT-S: " + ", ".join(wrong), path=path
        )
    ids = tokenizer.encode("ACGT").ids
    if ids[0] != SPECIAL_TOKENS["[CLS]"] or ids[-1] != SPECIAL_TOKENS["[SEP]"]:
        raise ModelError("tokenizer does not add [CLS] ... [SEP] around a sequence", path=path)
    if SPECIAL_TOKENS["[PAD]"] in ids:
        raise ModelError("tokenizer pads a sequence on its own", path=path)
    if tokenizer.get_vocab_size(with_added_tokens=True) > config.vocab_size:
        raise ModelError(
            f"tokenizer has more tokens than vocab_size {config.vocab_size}", path=path
        )
    return tokenizer


# Fields of a BPE model that newer `tokenizers` write with their default value; an older
# library that does not know one refuses the whole file, and at its default it changes nothing.
_DEFAULT_MODEL_FIELDS = {"byte_fallback": False, "ignore_merges": False}


def _inference_json(path: Path) -> str:
    """The file's JSON as the reference ran it: no truncation, no padding.

    The published tokenizer.json carries truncation at 2000 and fixed padding to 2000 (what
    `save_pretrained` writes after a padded training run). The reference called the tokenizer
    through transformers with default arguments, which switch both off for every call; left on,
    every chunk would gain [PAD] tokens and long sequences would be cut. They are dropped before
    the tokenizer is built, so no probe or encoding ever sees them.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"unreadable tokenizer: {exc}", path=path) from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ModelError("unreadable tokenizer: not a tokenizers JSON file", path=path)
    for setting in ("truncation", "padding"):
        if data.get(setting) is not None:
            logger.debug("%s: ignoring its saved %s (%s)", path, setting, data[setting])
        data[setting] = None
    model = data["model"]
    for name, default in _DEFAULT_MODEL_FIELDS.items():
        if name in model and model[name] == default:
            del model[name]
    return json.dumps(data)


def tokenize_dna(tokenizer: Tokenizer, sequences: list[str]) -> list[list[int]]:
    """Token ids per sequence, [CLS] ... [SEP], no truncation.

    Upper-cases first: the published tokenizer has no normalizer, so lower-case bases would each
    become [UNK]. Non-ACGT letters (N, IUPAC) still become one [UNK] per character, as published.
    """
    if tokenizer.truncation is not None or tokenizer.padding is not None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
    # In slices: an Encoding holds strings, offsets and masks per token, and a whole shard's
    # worth at once raised resident memory by ~19 KB per frame (measured on 8192 frames of
    # 499 nt: 158 MB at once, 20 MB in slices of 256).
    ids: list[list[int]] = []
    for start in range(0, len(sequences), TOKENIZE_SLICE):
        part = [s.upper() for s in sequences[start:start + TOKENIZE_SLICE]]
        ids += [enc.ids for enc in tokenizer.encode_batch(part, add_special_tokens=True)]
    return ids


TOKENIZE_SLICE = 256
