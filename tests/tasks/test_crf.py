import itertools

import torch

from pipeline.tasks.crf import CRF


def brute(crf, e, length):
    """All K^length paths of one row: (log-sum-exp of scores, best path)."""
    K = e.shape[-1]
    trans, start = crf._trans(), crf._start()
    scores = {}
    for path in itertools.product(range(K), repeat=length):
        s = start[path[0]] + e[0, path[0]]
        for t in range(1, length):
            s = s + trans[path[t - 1], path[t]] + e[t, path[t]]
        scores[path] = s + crf.end[path[-1]]
    values = torch.stack(list(scores.values()))
    return torch.logsumexp(values, 0), list(max(scores, key=lambda p: scores[p]))


def random_crf(K, seed, allowed=None):
    torch.manual_seed(seed)
    crf = CRF(K, allowed)
    with torch.no_grad():
        for p in (crf.transitions, crf.start, crf.end):
            p.normal_()
    return crf


def test_partition_and_viterbi_equal_brute_force_with_padding():
    crf = random_crf(3, 0)
    e = torch.randn(3, 5, 3)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    logz = crf.log_partition(e, mask)
    paths = crf.viterbi(e, mask)
    for b, n in enumerate([5, 3, 1]):
        ref_z, ref_path = brute(crf, e[b, :n], n)
        assert torch.allclose(logz[b], ref_z, atol=1e-5)
        assert paths[b] == ref_path


def test_nll_of_gold_path_matches_brute_force_probability():
    crf = random_crf(4, 1)
    e = torch.randn(1, 4, 4)
    tags = torch.tensor([[0, 3, 1, 2]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    logz, _ = brute(crf, e[0], 4)
    s = (
        crf.start[0]
        + e[0, 0, 0]
        + crf.transitions[0, 3]
        + e[0, 1, 3]
        + crf.transitions[3, 1]
        + e[0, 2, 1]
        + crf.transitions[1, 2]
        + e[0, 3, 2]
        + crf.end[2]
    )
    assert torch.allclose(crf.nll(e, tags, mask), logz - s, atol=1e-5)


def test_disallowed_transitions_never_decoded():
    allowed = torch.ones(3, 3, dtype=torch.bool)
    allowed[0, 2] = False  # e.g. O → I-X
    crf = random_crf(3, 2, allowed)
    e = torch.zeros(1, 6, 3)
    e[0, :, 2] = 5.0  # emissions push for tag 2 everywhere
    e[0, 0, 0] = 50.0  # but force tag 0 first
    path = crf.viterbi(e, torch.ones(1, 6, dtype=torch.bool))[0]
    assert path[0] == 0 and path[1] != 2
