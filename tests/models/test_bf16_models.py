"""load(dtype="bfloat16"): models with bfloat16 linear weights against float32 references.

Every op is exact to its rounded operands (debug mode checks each against the numpy reference
of the bf16-rounded weight and, on the AMX path, input). End to end, rounding each weight to
8 significant bits moves outputs by a fraction of a percent per layer, so results are compared
with bf16 tolerances stated here once: logits within BF16_LOGIT_RTOL of the largest |logit|,
sentence embeddings at cosine >= BF16_MIN_COSINE.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyengine

torch = pytest.importorskip("torch")

BF16_LOGIT_RTOL = 3e-2
BF16_MIN_COSINE = 0.999


def relative_logit_error(got, want) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.fixture(scope="module")
def bf16_loaded(hf_checkpoint):
    name, folder, hf = hf_checkpoint
    return name, pyengine.load(folder, dtype="bfloat16"), hf


def test_random_decoders_logits_near_transformers(bf16_loaded, threads):
    from test_decoder_parity import hf_logits

    name, model, hf = bf16_loaded
    ids = np.random.default_rng(0).integers(0, hf.config.vocab_size, (2, 37))
    err = relative_logit_error(model.forward(ids), hf_logits(hf, ids))
    assert err <= BF16_LOGIT_RTOL, f"{name}: {err:.3g}"


def test_decode_steps_near_full_forward(bf16_loaded):
    """Decode steps (few-row path: fp32 activations) against the full forward (on AMX, the
    tile path rounds activations too): both within the bf16 tolerance of each other."""
    from test_decoder_parity import decode_steps_and_full_forward

    name, model, hf = bf16_loaded
    for pos, step, full in decode_steps_and_full_forward(model, hf.config.vocab_size):
        err = relative_logit_error(step, full)
        assert err <= BF16_LOGIT_RTOL, f"{name} position {pos}: {err:.3g}"


def test_debug_mode_checks_every_op_against_rounded_operands(hf_checkpoint):
    name, folder, hf = hf_checkpoint
    model = pyengine.load(folder, dtype="bfloat16", debug=True)
    # each Linear path (Bf16Linear.path): 2 rows "gemv"; 70 rows "tiles" on amx, "widened" on
    # the other levels; 7 rows "tiles", or "widened" on generic/avx2, "gemv" on avx512
    for rows in (2, 7, 70):  # debug mode raises OpMismatch naming the first op off
        model.forward((np.arange(rows) % 50 + 1)[None])
        checked = dict(model.debug_report)  # every op with a reference, the LM head last
        assert len(checked) > 10 and "lm_head" in checked, sorted(checked)
        assert max(checked.values()) <= 1e-4


def test_smollm2_near_float32(smollm2_path):
    """Teacher-forced over the golden text, so one near-tie cannot derail the rest (free-running
    greedy text may part from float32's at such a tie, as any change of precision can)."""
    from test_smollm2 import GOLDEN

    fp32 = pyengine.load(smollm2_path, dtype="float32")
    bf16 = pyengine.load(smollm2_path, dtype="bfloat16")
    ids = np.array([GOLDEN["prompt_ids"] + GOLDEN["new_ids"]])
    want, got = fp32.forward(ids), bf16.forward(ids)
    err = relative_logit_error(got, want)
    assert err <= BF16_LOGIT_RTOL, f"{err:.3g}"
    agree = (got.argmax(-1) == want.argmax(-1)).mean()
    assert agree >= 0.9, agree


def test_minilm_near_sentence_transformers(minilm_path, threads):
    st = pytest.importorskip("sentence_transformers")
    from test_encoder import SENTENCES

    ref = st.SentenceTransformer(str(minilm_path), device="cpu")
    want = ref.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    got = pyengine.load(minilm_path, dtype="bfloat16").encode(SENTENCES, batch_size=4)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= BF16_MIN_COSINE, cos


def test_unknown_dtype_is_named(tiny_llama_folder):
    with pytest.raises(ValueError, match="dtype 'float16' is not supported"):
        pyengine.load(tiny_llama_folder, dtype="float16")
