"""Synthetic text: made-up words with a Zipf-like frequency, so BM25 sees
postings lists shaped like real text's (a few very common terms, a long tail),
reproducible from a seed."""

from __future__ import annotations

import random
from itertools import accumulate

_SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "qui", "dor", "pel", "sun", "bra", "ix"]


def vocabulary(size: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)  # noqa: S311  (reproducible text, not secrets)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class TextMaker:
    def __init__(self, vocab_size: int = 20_000, seed: int = 11) -> None:
        self.words = vocabulary(vocab_size)
        self.weights = list(accumulate(1.0 / (rank + 1) for rank in range(vocab_size)))
        self.rng = random.Random(seed)  # noqa: S311

    def sentence(self, n: int) -> str:
        words = self.rng.choices(self.words, cum_weights=self.weights, k=n)
        return " ".join(words).capitalize() + "."

    def passage(self, n_words: int) -> str:
        parts, left = [], n_words
        while left > 0:
            n = min(left, self.rng.randint(8, 20))
            parts.append(self.sentence(n))
            left -= n
        return " ".join(parts)

    def question(self) -> str:
        """A few mid-frequency words: each matches a fair share of chunks."""
        picks = self.rng.sample(self.words[50:2000], 4)
        return "What about " + " ".join(picks) + "?"

    def document(self, paragraphs: int, words_each: int = 120) -> str:
        return "\n\n".join(self.passage(words_each) for _ in range(paragraphs))
