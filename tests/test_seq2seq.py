"""The encoder-decoder path, on a small randomly initialised T5 with the bundled tokenizer."""
from __future__ import annotations

import pytest
import torch
from support import scoring_requests
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

from policies.config import BackendConfig
from policies.models import resolve_model
from policies.scoring import naive_seq2seq_scores


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    config = T5Config(vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, n_positions=512)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t5")
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_seq2seq_scores_equal_naive_reference(t5_dir):
    from policies.transformers_backend import TransformersBackend

    backend = TransformersBackend(BackendConfig(model=t5_dir, dtype="float32", max_batch_tokens=512, max_cache_tokens=2048))
    assert backend.is_seq2seq
    contexts, candidates = scoring_requests(n_babyai=6)
    got = backend.score(contexts, candidates, with_hidden=True)
    reference = naive_seq2seq_scores(backend.model, backend.encode(contexts, candidates))
    assert max(abs(a - b) for ra, rb in zip(got.logprobs, reference) for a, b in zip(ra, rb)) < 1e-4
    assert got.hidden.shape == (len(contexts), 64)
    assert backend.generate(["hello there"], max_new_tokens=4).texts[0][0] is not None
