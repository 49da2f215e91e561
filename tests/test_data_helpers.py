"""Small corpora made by the tests."""
import numpy as np

WORDS = "the cat dog sat on a mat and ran to big red house tree . , is was".split()


def make_corpus(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return "".join(" ".join(rng.choice(WORDS, size=rng.integers(2, 12))) + "\n" for _ in range(n))
