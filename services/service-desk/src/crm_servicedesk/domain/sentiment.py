"""Sentiment of short customer text (social posts, survey comments).

VADER (Hutto & Gilbert, 2014) is a lexicon and rule model built for social-media text: it reads
capitalisation, punctuation ("!!!"), emoticons, slang and negation, needs no training data and
costs tens of microseconds per post. Its compound score is the polarity in [-1, 1]; KPIS.md
classifies it with the thresholds ±0.05 (the thresholds VADER's authors recommend).
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
# Longer text adds nothing to a polarity and costs linear time: only the start is scored.
MAX_SCORED_CHARS = 2000


class SentimentClass(StrEnum):
    """Net sentiment's three classes."""

    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    # Loading the lexicon takes ~50 ms; one analyzer serves the whole process.
    return SentimentIntensityAnalyzer()


def polarity(text: str) -> float:
    """VADER's compound score of ``text``, in [-1, 1]; 0.0 for empty text."""
    text = text.strip()[:MAX_SCORED_CHARS]
    if not text:
        return 0.0
    return float(_analyzer().polarity_scores(text)["compound"])


def classify(score: float) -> SentimentClass:
    """Positive above +0.05, negative below -0.05, neutral in between."""
    if score >= POSITIVE_THRESHOLD:
        return SentimentClass.POSITIVE
    if score <= NEGATIVE_THRESHOLD:
        return SentimentClass.NEGATIVE
    return SentimentClass.NEUTRAL
