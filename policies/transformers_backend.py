"""The transformers backend: shared-prefix scoring, batched generation, LoRA, versioned weights."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from policies.backend import GenerateResult, ScoreResult
from policies.config import BackendConfig
from policies.generation import cut_at_stop, fit_prompt, validate_generate_args
from policies.models import resolve_model
from policies.precision import CastOnceLinear, compute_context, resolve_dtype
from policies.prefix_scorer import PairScores, causal_pair_scores, seq2seq_pair_scores
from policies.scoring import budget_batches, reduce_pairs, split_pairs
from policies.tokenization import EncodedRequest, encode_request


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_window(config) -> int:
    """Longest token sequence the model accepts, from its config."""
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"cannot tell the context window of {type(config).__name__}; it names no max positions")


def set_torch_threads(count: int) -> None:
    """torch's intra-op threads: `count`, or every core of the node for -1; 0 leaves them as they are."""
    if count:
        torch.set_num_threads((os.cpu_count() or 1) if count < 0 else count)


def trained_blocks(model, count: int) -> range:
    """Indices of the top `count` transformer blocks of a decoder-only model (its base model's `layers`)."""
    layers = getattr(model.base_model, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"backend.trainable_layers needs a decoder-only model whose blocks are a `layers` list "
                         f"(Llama, Qwen, SmolLM...); {type(model).__name__} has none: set trainable_layers: 0")
    if count > len(layers):
        raise ValueError(f"backend.trainable_layers={count} but the model has {len(layers)} blocks: "
                         f"choose 1..{len(layers)}, or 0 for all")
    return range(len(layers) - count, len(layers))


class TransformersBackend:
    """A transformers model (causal or encoder-decoder) serving score/generate/hidden.

    `model` is the trainable module (peft-wrapped with LoRA); the learner may train it in
    place and call `pair_scores` with autograd on.
    """

    def __init__(self, config: BackendConfig):
        set_torch_threads(config.torch_threads)
        self.config = config
        self.version = 0
        self.device = resolve_device(config.device)
        path = resolve_model(config.model)
        hf_config = AutoConfig.from_pretrained(path)
        self.is_seq2seq = bool(getattr(hf_config, "is_encoder_decoder", False))
        auto = AutoModelForSeq2SeqLM if self.is_seq2seq else AutoModelForCausalLM
        self.compute_dtype = resolve_dtype(config.dtype, self.device)
        self.weights_dtype = torch.float32 if config.fp32_weights else self.compute_dtype
        model = auto.from_pretrained(path, dtype=self.weights_dtype).to(self.device)
        model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.pad_id = self._pad_id()
        self.window = model_window(hf_config)
        # Body and head are taken before any peft wrapping: LoRA layers are injected in place.
        self._body = None if self.is_seq2seq else model.base_model
        self._head = None if self.is_seq2seq else CastOnceLinear(model.get_output_embeddings(), self.compute_dtype)
        self.hf_model = model
        self._trained_blocks = trained_blocks(model, config.trainable_layers) if config.trainable_layers else None
        self.model = self._with_lora(model) if config.lora else self._with_trained_blocks(model)
        self._trained_names = frozenset(name for name, p in self.model.named_parameters() if p.requires_grad)
        self._store_frozen_linears()

    def freeze(self) -> None:
        """Serve only: no weight needs a gradient, and under mixed precision every matmul weight is stored in
        the compute dtype once instead of being cast at each call."""
        self.model.requires_grad_(False)
        self._store_frozen_linears()

    def _store_frozen_linears(self) -> None:
        """Under mixed precision, store the weights of Linear layers that are not trained (LoRA's base model, a
        scorer's copy) in the compute dtype: autocast casts them to it at every call, so the numbers are the
        same. Weights tied to the input embeddings (the LM head of most small models) stay float32."""
        if self.compute_dtype == self.weights_dtype:
            return
        tied = {id(self.model.get_input_embeddings().weight)}
        for module in self.model.modules():
            if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad and id(module.weight) not in tied:
                module.to(self.compute_dtype)

    def precision(self):
        """The context every forward runs in: autocast to the compute dtype over float32 weights, or nothing."""
        return compute_context(self.device, self.compute_dtype, self.weights_dtype)

    def _pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, 0):
            if candidate is not None:
                return candidate
        return 0

    def _with_lora(self, model):
        from peft import LoraConfig as PeftLoraConfig, get_peft_model

        lora = self.config.lora
        torch.manual_seed(self.config.seed)
        peft_config = PeftLoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules),
            task_type="SEQ_2_SEQ_LM" if self.is_seq2seq else "CAUSAL_LM",
            layers_to_transform=None if self._trained_blocks is None else list(self._trained_blocks),
        )
        try:
            return get_peft_model(model, peft_config)
        except ValueError as e:
            raise ValueError(f"lora.target_modules {list(lora.target_modules)} do not fit this model: {e}") from e

    def _with_trained_blocks(self, model):
        """Full fine-tuning of the top `trainable_layers` blocks and the final norm: everything else frozen."""
        if self._trained_blocks is None:
            return model
        model.requires_grad_(False)
        body = model.base_model
        for index in self._trained_blocks:
            body.layers[index].requires_grad_(True)
        if isinstance(getattr(body, "norm", None), torch.nn.Module):
            body.norm.requires_grad_(True)
        return model

    # ---- scoring -------------------------------------------------------------------------
    def encode(self, contexts: Sequence[str], candidates: Sequence[Sequence[str]]) -> EncodedRequest:
        """Tokenize a request under the project's boundary rule, enforcing the window."""
        return encode_request(
            self.tokenizer, contexts, candidates, self.window, self.config.truncation,
            decoder_window=self.window if self.is_seq2seq else None,
        )

    def pair_scores(self, request: EncodedRequest, want_hidden: bool = False) -> PairScores:
        """Per-pair summed log-probs (differentiable when grad is enabled), in the backend's precision; the
        hidden states (for value heads) come back in float32."""
        budgets = dict(max_batch_tokens=self.config.max_batch_tokens, max_cache_tokens=self.config.max_cache_tokens,
                       pad_id=self.pad_id, want_hidden=want_hidden)
        with self.precision():
            if self.is_seq2seq:
                pairs = seq2seq_pair_scores(self.model, request, **budgets)
            else:
                pairs = causal_pair_scores(self._body, self._head, request, **budgets)
        if pairs.hidden is not None:
            pairs.hidden = pairs.hidden.float()
        return pairs

    def score(self, contexts, candidates, *, mean: bool = False, with_hidden: bool = False) -> ScoreResult:
        request = self.encode(contexts, candidates)
        with torch.inference_mode():
            pairs = self.pair_scores(request, want_hidden=with_hidden)
            flat = reduce_pairs(pairs.sums, pairs.lengths, mean).cpu().tolist()
        return ScoreResult(
            logprobs=split_pairs(flat, [len(c) for c in request.candidate_ids]),
            versions=[self.version] * len(request.context_ids),
            hidden=pairs.hidden.cpu() if with_hidden else None,
        )

    def hidden(self, contexts: Sequence[str]) -> torch.Tensor:
        """[num_contexts, H] final hidden state at each context's last token (seq2seq: first decoder position)."""
        dummy = [["?"] for _ in contexts]  # one one-token candidate; its score is discarded
        return self.score(contexts, dummy, with_hidden=True).hidden

    # ---- generation ----------------------------------------------------------------------
    def generate(self, prompts, *, n: int = 1, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None) -> GenerateResult:
        validate_generate_args(prompts, n, max_new_tokens, temperature, top_p)
        room = self.window if self.is_seq2seq else self.window - max_new_tokens
        prompt_ids = [fit_prompt(i, ids, room, window=self.window, max_new_tokens=max_new_tokens,
                                 truncation=self.config.truncation)
                      for i, ids in enumerate(self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"])]
        texts: list[list[str]] = [[] for _ in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
        costs = [(len(prompt_ids[i]) + max_new_tokens) * n for i in order]
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
        with torch.inference_mode(), self.precision(), \
                torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed if seed is None else seed)
            for batch in budget_batches(costs, self.config.max_batch_tokens):
                rows = [order[k] for k in batch]
                for i, completion in zip(rows, self._generate_batch([prompt_ids[i] for i in rows], n, max_new_tokens,
                                                                    sampling, stop)):
                    texts[i] = completion
        return GenerateResult(texts=texts, versions=[self.version] * len(prompts))

    def _generate_batch(self, rows: list[list[int]], n: int, max_new_tokens: int, sampling: dict,
                        stop: Sequence[str]) -> list[list[str]]:
        width = max(len(r) for r in rows)
        left = not self.is_seq2seq
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for k, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[k, span], mask[k, span] = torch.tensor(row), 1
        extra = dict(stop_strings=list(stop), tokenizer=self.tokenizer) if stop else {}
        out = self.model.generate(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), max_new_tokens=max_new_tokens,
            num_return_sequences=n, pad_token_id=self.pad_id, **sampling, **extra,
        )
        new_tokens = out if self.is_seq2seq else out[:, width:]
        decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [[cut_at_stop(decoded[k * n + j], stop) for j in range(n)] for k in range(len(rows))]

    # ---- weights -------------------------------------------------------------------------
    def get_weights(self) -> dict[str, torch.Tensor]:
        """The trainable weights: the LoRA adapter alone with LoRA, else the full state dict (on CPU)."""
        if self.config.lora:
            from peft import get_peft_model_state_dict

            state = get_peft_model_state_dict(self.model)
        elif self._trained_blocks is not None:
            state = {k: v for k, v in self.model.state_dict().items() if k in self._trained_names}
        else:
            state = self.model.state_dict()
        return {k: v.detach().cpu().clone() for k, v in state.items()}

    def load_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        """Load weights from `get_weights` of an identically configured backend and stamp `version`."""
        with torch.no_grad():
            if self.config.lora:
                from peft import set_peft_model_state_dict

                result = set_peft_model_state_dict(self.model, dict(weights))
                unexpected = getattr(result, "unexpected_keys", [])
                if unexpected:
                    raise ValueError(f"adapter weights have keys this model lacks: {unexpected[:5]}")
            elif self._trained_blocks is not None:
                if set(weights) != self._trained_names:
                    raise ValueError(f"weights do not match backend.trainable_layers={self.config.trainable_layers}: "
                                     f"missing {sorted(self._trained_names - set(weights))[:3]}, unknown "
                                     f"{sorted(set(weights) - self._trained_names)[:3]}; pass get_weights() of a "
                                     f"backend configured the same")
                self.model.load_state_dict(dict(weights), strict=False)
            else:
                self.model.load_state_dict(dict(weights), strict=True)
        self.version = int(version)
