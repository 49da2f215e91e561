"""A linear-chain CRF for sequence tagging (NER): exact log-likelihood and Viterbi decoding.

Why our own (≈80 lines) rather than a package: it needs transition constraints (e.g. no
``I-PER`` after ``O`` under IOB2) and the same mask convention as the rest of the pipeline, and
the tests check it against brute-force enumeration.

Shapes: ``emissions`` (B, T, K) tag scores, ``tags`` (B, T) ints, ``mask`` (B, T) bool, True on
real tokens, each row a prefix (padding only at the end); every row has at least one token.
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    allowed: torch.Tensor  # buffers
    allowed_start: torch.Tensor

    def __init__(self, n_tags: int, allowed: torch.Tensor | None = None, allowed_start: torch.Tensor | None = None):
        """``allowed`` (K, K) bool: transition i → j permitted; ``allowed_start`` (K,) bool."""
        super().__init__()
        self.n_tags = n_tags
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))  # score of i → j
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))
        self.register_buffer("allowed", torch.ones(n_tags, n_tags, dtype=torch.bool) if allowed is None else allowed)
        self.register_buffer(
            "allowed_start", torch.ones(n_tags, dtype=torch.bool) if allowed_start is None else allowed_start
        )

    def _trans(self) -> torch.Tensor:
        return self.transitions.masked_fill(~self.allowed, -1e4)

    def _start(self) -> torch.Tensor:
        return self.start.masked_fill(~self.allowed_start, -1e4)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) log Σ over all tag paths of exp(score)."""
        trans = self._trans()
        alpha = self._start() + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t, None], nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) score of the given tag paths."""
        trans = self._trans()
        B, T, _ = emissions.shape
        m = mask.to(emissions.dtype)
        s = self._start()[tags[:, 0]] + emissions[:, 0].gather(1, tags[:, :1]).squeeze(1)
        for t in range(1, T):
            step = trans[tags[:, t - 1], tags[:, t]] + emissions[:, t].gather(1, tags[:, t : t + 1]).squeeze(1)
            s = s + step * m[:, t]
        last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0)[:, None]).squeeze(1)
        return s + self.end[last]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood of the gold paths."""
        return (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)).sum()

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best tag path of each row (length = its number of real tokens)."""
        trans = self._trans()
        B, T, K = emissions.shape
        score = self._start() + emissions[:, 0]  # (B, K)
        back = []
        for t in range(1, T):
            cand = score[:, :, None] + trans[None]  # (B, K_prev, K)
            best, arg = cand.max(dim=1)
            nxt = best + emissions[:, t]
            keep = mask[:, t, None]
            score = torch.where(keep, nxt, score)
            back.append(torch.where(keep, arg, torch.arange(K, device=arg.device).expand(B, K)))
        score = score + self.end
        paths = []
        lengths = mask.sum(1).tolist()
        for b in range(B):
            tag = int(score[b].argmax())
            path = [tag]
            for t in range(lengths[b] - 1, 0, -1):
                tag = int(back[t - 1][b, tag])
                path.append(tag)
            paths.append(path[::-1])
        return paths


def crf_constraints(tags: list[str], scheme: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed transitions (K, K) and start tags (K,) for ``scheme``: e.g. I-X only after B-X or I-X."""
    K = len(tags)
    split = [(t, None) if t == "O" else tuple(t.split("-", 1)) for t in tags]
    allowed = torch.ones(K, K, dtype=torch.bool)
    start = torch.ones(K, dtype=torch.bool)
    for j, (pj, lj) in enumerate(split):
        inside = pj in ("I", "E")
        if inside:
            start[j] = False
        for i, (pi, li) in enumerate(split):
            if scheme == "iob2":  # I-X only continues a chunk of type X
                allowed[i, j] = not inside or (pi in ("B", "I") and li == lj)
            elif pi in ("B", "I"):  # bioes: an open chunk X must go on with I-X or end with E-X
                allowed[i, j] = inside and li == lj
            else:  # bioes: after O, E-X or S-X a chunk can only start (B, S) or not (O)
                allowed[i, j] = not inside
    return allowed, start
