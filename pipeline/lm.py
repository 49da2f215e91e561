"""Language-model uses of an encoder exported with its softmax: perplexity and sampling.

Perplexities count one ``</S>`` (forward) or ``<S>`` (backward) prediction per sentence; the
average perplexity is exp of the mean of the two directions' per-token NLL (their geometric mean).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from pipeline.data.batching import make_batch
from pipeline.data.chars import BOS_TOKEN, EOS_TOKEN
from pipeline.data.vocab import BOS_ID, PAD_ID, UNK_ID
from pipeline.errors import PipelineError


def perplexities(forward_nll: float, backward_nll: float, tokens: float) -> dict:
    """Summed NLLs of both directions over ``tokens`` predictions → forward/backward/average perplexity."""
    n = max(tokens, 1.0)
    return {
        "forward_ppl": math.exp(forward_nll / n),
        "backward_ppl": math.exp(backward_nll / n),
        "average_ppl": math.exp((forward_nll + backward_nll) / (2 * n)),
        "tokens": int(n),
    }


def need_softmax(encoder, what: str) -> None:
    if not encoder.has_softmax:
        where = f"{encoder.source}: " if encoder.source else ""
        if encoder.vocab is None:
            raise PipelineError(
                f"{where}this encoder has no vocabulary or softmax (ELMo weight files hold the "
                f"encoder only), which {what.lower()} needs; it can embed and finetune"
            )
        raise PipelineError(
            f"{where}this encoder has no softmax weights, which {what.lower()} needs; "
            f"export it again with `elmo export --with-softmax`"
        )


def lm_sums(encoder, sentences: Iterable[Sequence[str] | str], batch_tokens: int = 4096) -> dict:
    """Summed forward/backward NLL (exact softmax), predicted tokens and OOV tokens of ``sentences``."""
    need_softmax(encoder, "Language-model scoring")
    toks = [encoder.as_tokens(s) for s in sentences]
    V = len(encoder.vocab)
    f_sum = b_sum = 0.0
    n = oov = 0
    for idx in encoder.batches(toks, batch_tokens):
        res = encoder.run([toks[i] for i in idx])
        ids = [np.array([encoder.vocab.id(t) for t in toks[i]], dtype=np.int64) for i in idx]
        batch = make_batch(ids, V)  # the same <S> … </S> framing and targets as pretraining
        oov += sum(int((s == UNK_ID).sum()) for s in ids)
        n += batch.n_targets
        with torch.no_grad():
            f, bw = encoder.model.lm_nll(res, batch.fwd_targets, batch.bwd_targets)
        f_sum += float(f)
        b_sum += float(bw)
    return {"forward_nll": f_sum, "backward_nll": b_sum, "tokens": n, "oov_tokens": oov}


def generate(
    encoder,
    prompt: Sequence[str] | str = (),
    max_tokens: int = 30,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Sample a continuation from the forward LM; stops at </S>. Emits only vocabulary words."""
    need_softmax(encoder, "Sampling")
    if temperature <= 0:
        raise PipelineError(f"temperature must be positive, got {temperature}")
    if top_k is not None and top_k < 1:
        raise PipelineError(f"top-k must be at least 1, got {top_k}")
    if max_tokens < 0:
        raise PipelineError(f"max-tokens must be >= 0, got {max_tokens}")
    gen = torch.Generator().manual_seed(seed)
    tokens = [BOS_TOKEN, *encoder.as_tokens(prompt)]
    banned = torch.tensor([PAD_ID, UNK_ID, BOS_ID])
    out: list[str] = []
    for _ in range(max_tokens):
        distinct = list(dict.fromkeys(tokens))
        where = {t: i for i, t in enumerate(distinct)}
        x = encoder.token_vectors(distinct)[torch.tensor([where[t] for t in tokens])][None]  # (1, t, P)
        with torch.no_grad():
            h = encoder.model.forward_stack(x)[-1][0, -1]  # (P,) forward LM state at the last token
            logits = encoder.model.softmax.log_probs(h) / temperature  # (V,)
        logits[banned] = float("-inf")
        if top_k is not None and top_k < logits.numel():
            kth = torch.topk(logits, top_k).values[-1]
            logits[logits < kth] = float("-inf")
        word = encoder.vocab.tokens[int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))]
        if word == EOS_TOKEN:
            break
        out.append(word)
        tokens.append(word)
    return out
