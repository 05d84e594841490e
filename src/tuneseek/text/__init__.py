"""The text side of text-to-music search: a sentence encoder, tag descriptions, zero-shot ranking.

Importing this package is cheap: the model loads when the first :class:`TextEncoder` is made,
in NumPy for all-MiniLM-L6-v2 and models like it (:mod:`tuneseek.text.numpy_bert`), else with
sentence-transformers (and torch).
"""

from tuneseek.text.encoder import DEFAULT_MODEL, CheckedQuery, EncodedQuery, TextEncoder
from tuneseek.text.tag_text import describe_tag
from tuneseek.text.zeroshot import (
    Phrase,
    QueryWeights,
    Ranking,
    TagTable,
    TagWeight,
    parse_query,
    tag_weights,
    zero_shot,
)

__all__ = [
    "DEFAULT_MODEL",
    "TextEncoder",
    "CheckedQuery",
    "EncodedQuery",
    "describe_tag",
    "Phrase",
    "QueryWeights",
    "Ranking",
    "TagTable",
    "TagWeight",
    "parse_query",
    "tag_weights",
    "zero_shot",
]
