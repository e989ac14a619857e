"""ESM-2 loading, residue-mean embedding and the tiny checkpoint (virnucpro.models.esm_io)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from virnucpro.errors import ModelError
from virnucpro.models.esm_io import (
    MAX_RESIDUES,
    EsmBundle,
    embed_protein_batch,
    load_esm,
    regression_path,
)
from virnucpro.models.tiny.esm import write_tiny_esm

RESIDUES = "ACDEFGHIKLMNPQRSTVWY"


def _protein(n: int, offset: int = 0) -> str:
    return "".join(RESIDUES[(i * 7 + offset) % 20] for i in range(n))


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_esm(tmp_path_factory.mktemp("esm"), seed=0)


@pytest.fixture(scope="module")
def bundle(tiny_path: Path) -> EsmBundle:
    return load_esm(tiny_path)


def _layer(bundle: EsmBundle, protein: str, layer: int) -> torch.Tensor:
    """Representation [T, E] of one protein, straight from fair-esm, for hand computations."""
    _, _, tokens = bundle.batch_converter([("p", protein)])
    with torch.inference_mode():
        return bundle.model(tokens, repr_layers=[layer])["representations"][layer][0]


class _Sneaky:
    """A class a checkpoint has no business naming."""


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a malicious checkpoint would do
        return (os.system, (f"touch {self.marker}",))


def _rewrite_cfg(path: Path, extra: object) -> None:
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    data["cfg"]["extra"] = extra
    torch.save(data, path)


def test_tiny_checkpoint_loads_with_weights_only_in_eval_mode(bundle: EsmBundle) -> None:
    assert (bundle.embed_dim, bundle.num_layers) == (40, 2)
    assert len(bundle.alphabet) == 33
    assert not bundle.model.training
    assert bundle.model.token_dropout  # the x0.88 scaling stays on, as in the real model


def test_tiny_checkpoint_has_the_published_layout(tiny_path: Path) -> None:
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(tiny_path, weights_only=True)
        regression = torch.load(regression_path(tiny_path), weights_only=True)
    assert tiny_path.name == "esm2_t2_tiny.pt"
    assert isinstance(data["cfg"]["model"], argparse.Namespace)
    assert all(
        k.startswith(("encoder.sentence_encoder.", "encoder.lm_head.")) for k in data["model"]
    )
    assert set(regression["model"]) == {
        "contact_head.regression.weight",
        "contact_head.regression.bias",
    }


def test_another_class_in_cfg_is_inert_but_among_the_weights_is_refused(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path, seed=0)
    _rewrite_cfg(path, _Sneaky())
    load_esm(path)  # read as an inert record (safe_pickle), never constructed
    path = write_tiny_esm(tmp_path / "w", seed=0)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    data["model"]["sneaky"] = _Sneaky()
    torch.save(data, path)
    with pytest.raises(ModelError, match="_Sneaky") as err:
        load_esm(path)
    assert err.value.path == str(path)


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path / "m", seed=0)
    marker = tmp_path / "pwned"
    _rewrite_cfg(path, _Boom(marker))
    with pytest.raises(ModelError, match="system"):
        load_esm(path)
    assert not marker.exists()


def test_a_missing_regression_file_is_named(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path, seed=0)
    regression_path(path).unlink()
    with pytest.raises(ModelError, match="esm2_t2_tiny-contact-regression.pt"):
        load_esm(path)


def test_a_checkpoint_not_named_esm2_is_refused(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path, seed=0)
    renamed = path.rename(tmp_path / "model.pt")
    with pytest.raises(ModelError, match="esm2_"):
        load_esm(renamed)


def test_residue_mean_excludes_bos_eos_and_padding(bundle: EsmBundle) -> None:
    proteins = [_protein(5), _protein(23, 3)]
    got = embed_protein_batch(bundle, proteins, "cpu")
    assert got.shape == (2, 40) and got.dtype == torch.float32
    layer = bundle.num_layers
    _, _, tokens = bundle.batch_converter([("a", proteins[0]), ("b", proteins[1])])
    with torch.inference_mode():
        reps = bundle.model(tokens, repr_layers=[layer])["representations"][layer]
    for i, p in enumerate(proteins):
        by_hand = reps[i, 1 : len(p) + 1].mean(dim=0)
        torch.testing.assert_close(got[i], by_hand, atol=1e-5, rtol=0)
    with_specials = reps[0, : len(proteins[0]) + 2].mean(dim=0)
    assert not torch.allclose(got[0], with_specials, atol=1e-3)


def test_the_last_layer_after_its_layer_norm_is_used(bundle: EsmBundle) -> None:
    protein = _protein(30)
    got = embed_protein_batch(bundle, [protein])[0]
    last = _layer(bundle, protein, bundle.num_layers)[1:31].mean(dim=0)
    torch.testing.assert_close(got, last, atol=1e-5, rtol=0)
    for other in range(bundle.num_layers):
        assert not torch.allclose(got, _layer(bundle, protein, other)[1:31].mean(dim=0), atol=1e-3)


def test_proteins_are_cut_to_their_first_1024_residues(bundle: EsmBundle) -> None:
    long = _protein(1100)
    got = embed_protein_batch(bundle, [long])[0]
    head = embed_protein_batch(bundle, [long[:MAX_RESIDUES]])[0]
    torch.testing.assert_close(got, head, atol=1e-5, rtol=0)
    tokens = torch.tensor(
        [[bundle.alphabet.cls_idx, *bundle.alphabet.encode(long), bundle.alphabet.eos_idx]]
    )
    with torch.inference_mode():
        full = bundle.model(tokens, repr_layers=[2])["representations"][2][0, 1:1101].mean(0)
    assert not torch.allclose(got, full, atol=1e-4)


def test_a_protein_in_a_padded_batch_equals_its_embedding_alone(bundle: EsmBundle) -> None:
    proteins = [_protein(1), _protein(7, 1), _protein(300, 2), _protein(1100, 3), _protein(60, 4)]
    batched = embed_protein_batch(bundle, proteins)
    for i, p in enumerate(proteins):
        alone = embed_protein_batch(bundle, [p])[0]
        torch.testing.assert_close(batched[i], alone, atol=1e-5, rtol=0)


def test_an_empty_batch_gives_an_empty_matrix(bundle: EsmBundle) -> None:
    assert embed_protein_batch(bundle, []).shape == (0, 40)


def test_tiny_generation_is_deterministic_and_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    rng = torch.random.get_rng_state()
    a = write_tiny_esm(tmp_path / "a", seed=0)
    b = write_tiny_esm(tmp_path / "b", seed=0)
    c = write_tiny_esm(tmp_path / "c", seed=1)
    assert torch.equal(rng, torch.random.get_rng_state())
    with torch.serialization.safe_globals([argparse.Namespace]):
        sa, sb, sc = (torch.load(p, weights_only=True)["model"] for p in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(
        sa["encoder.sentence_encoder.embed_tokens.weight"],
        sc["encoder.sentence_encoder.embed_tokens.weight"],
    )


def test_tiny_sizes_can_be_chosen(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path, seed=0, num_layers=3, embed_dim=48, attention_heads=6)
    tiny = load_esm(path)
    assert (path.name, tiny.embed_dim, tiny.num_layers) == ("esm2_t3_tiny.pt", 48, 3)
    assert embed_protein_batch(tiny, ["MKV"]).shape == (1, 48)


def _fair_esm_load(path: Path):
    """fair-esm's own loader (random initial weights, then the checkpoint copied over)."""
    import esm.pretrained

    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
        regression = torch.load(regression_path(path), weights_only=True)
    model, _ = esm.pretrained.load_model_and_alphabet_core(path.stem, data, regression)
    return model.eval()


@pytest.mark.parametrize("half", [False, True], ids=["float32-file", "float16-file"])
def test_loading_without_the_initial_draw_equals_fair_esms_loader(tmp_path: Path, half: bool) -> None:
    # The published 3B file stores float16 tensors (so does the benchmark's random full set).
    stored = torch.float16 if half else torch.float32
    path = write_tiny_esm(tmp_path, seed=5, num_layers=3, embed_dim=48, attention_heads=4,
                          dtype=stored)
    with torch.serialization.safe_globals([argparse.Namespace]):
        assert {v.dtype for v in torch.load(path, weights_only=True)["model"].values()} == {stored}
    ours, theirs = load_esm(path).model, _fair_esm_load(path)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype == torch.float32, key
        assert torch.equal(a[key], b[key]), key
    assert ours.lm_head.weight is ours.embed_tokens.weight  # tied, as ESM2 builds it
    assert not ours.training
    tokens = torch.tensor([[0, 5, 6, 7, 8, 9, 2]])
    with torch.inference_mode():
        x, y = ours(tokens, repr_layers=[3]), theirs(tokens, repr_layers=[3])
    assert torch.equal(x["logits"], y["logits"])
    assert torch.equal(x["representations"][3], y["representations"][3])


def test_a_checkpoint_missing_a_weight_is_named_and_refused(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path, seed=1)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    gone = next(k for k in data["model"] if k.endswith("layers.0.fc1.weight"))
    del data["model"][gone]
    torch.save(data, path)
    with pytest.raises(ModelError, match="layers.0.fc1.weight"):
        load_esm(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot reach a GPU")
def test_a_device_error_is_not_blamed_on_the_checkpoint(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path, seed=1)
    with pytest.raises(Exception) as info:
        load_esm(path, device="cuda:0")
    assert not isinstance(info.value, ModelError), info.value


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip-file", "legacy-file"])
def test_a_mapped_checkpoint_reads_as_the_whole_file(tmp_path: Path, zip_format: bool) -> None:
    # The GPU path maps the file; a file in torch's pre-1.6 format cannot be mapped and is read.
    from virnucpro.models.esm_io import _torch_load

    path = write_tiny_esm(tmp_path, seed=4, dtype=torch.float16)
    if not zip_format:
        torch.save(_torch_load(path), path, _use_new_zipfile_serialization=False)
    read, mapped = _torch_load(path), _torch_load(path, mmap=True)
    assert vars(read["cfg"]["model"]) == vars(mapped["cfg"]["model"])
    assert read["model"].keys() == mapped["model"].keys()
    for key, tensor in read["model"].items():
        assert mapped["model"][key].dtype == torch.float16
        assert torch.equal(tensor, mapped["model"][key]), key
