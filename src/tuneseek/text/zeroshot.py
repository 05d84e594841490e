"""Text-to-music search before any training: rank tracks by their stored tags.

Every track of the library has musicnn tag probabilities in two vocabularies (MagnaTagATune
and MSD top-50). A query is matched to the tags, not to the audio:

1. the query is cut into phrases at punctuation and at negations ("calm piano, no vocals" ->
   "calm piano", not "vocals"; :func:`parse_query`);
2. each phrase, and each tag (its label and its description, :mod:`tuneseek.text.tag_text`),
   are embedded by the sentence encoder; a softmax over the cosine similarities, at
   :data:`TEMPERATURE`, gives the phrase's weight on every tag. A positive phrase of several
   words is matched whole and word by word (:data:`WORD_SHARE`), so that every concept of
   "female vocal pop from the 90s" counts. The tag vectors are computed once per model and
   set of tags, and kept in the models directory between runs (:func:`_tag_vectors`);
3. a negated phrase pushes its tags down (negative weight); ruling out a voice ("no vocals",
   "without singing") also pulls up the tags that say there is none ("no vocal", "no voice",
   "instrumental"), and ruling out "instrumental" pulls up the vocal tags;
4. each phrase has the same total weight; a track's score is the weighted sum of its tag
   probabilities, standardised per tag over the library (:class:`TagTable`), so that a tag
   that is always high (rock) does not drown a rare one (sitar) and a weight means "more of
   this than usual".

The two vocabularies are one pool of tags: the softmax runs over all of them, so a concept
that both taggers know (rock, guitar, ambient...) counts through both.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneseek.errors import UsageError
from tuneseek.fileio import atomic_write_bytes
from tuneseek.models.directory import default_models_dir
from tuneseek.text.encoder import TextEncoder
from tuneseek.text.tag_text import NO_VOICE_TAGS, VOICE_TAGS, describe_tag

__all__ = [
    "TEMPERATURE",
    "Phrase",
    "TagWeight",
    "QueryWeights",
    "Ranking",
    "TagTable",
    "parse_query",
    "tag_weights",
    "zero_shot",
]

# Softmax temperature over cosine similarities, and the share of word-by-word matching. On 50
# described queries with the tags that they mean (benchmarks/text_search.py, part c), 0.05
# and 0.5 put 94 % of the weight on those tags and give 64 % of them a visible weight;
# 0.02-0.03 give each match nearly all to its nearest tag (60 % seen), 0.08 leaks 17 % of
# the weight to tags not meant and 0.12 44 %. Matching whole phrases only: 97 % on the tags
# meant but 61 % seen ("female vocal pop from the 90s" is then all female vocal, no pop or 90s).
TEMPERATURE = 0.05
WORD_SHARE = 0.5  # a positive phrase of several words: this share of its weight comes word by word
STD_FLOOR = 0.02  # smallest per-tag spread used to standardise (a tiny library has ~0 spread)
EXPLAIN_SHARE = 0.9  # explanations list the tags that hold this share of the weight...
EXPLAIN_MAX = 8  # ...at most this many
EXPLAIN_MIN_WEIGHT = 0.02  # ...and none below this

# A negation starts at one of these words...
_NEGATORS = {
    "no",
    "not",
    "neither",
    "without",
    "w/o",
    "never",
    "minus",
    "except",
    "excluding",
    "avoid",
    "lacking",
    "none",
    "nothing",
    "don't",
    "dont",
    "doesn't",
    "doesnt",
    "isn't",
    "isnt",
    "aren't",
    "arent",
    "nor",
}
# "non-vocal", "-vocals": these negate the one word they are attached to.
_PREFIXES = {"non", "-"}
# ...and runs to the end of its clause, or to one of these words, which resume the positive.
_RESUME = {"but", "with", "yet", "though", "although", "however", "instead", "rather", "just", "only"}
# Words that carry no description of the music: a phrase of nothing else is dropped, and they
# are trimmed from the ends of a phrase ("music that is not sad" is about "sad" only).
_FILLER = {
    "a",
    "an",
    "the",
    "some",
    "any",
    "music",
    "musics",
    "song",
    "songs",
    "track",
    "tracks",
    "tune",
    "tunes",
    "piece",
    "pieces",
    "something",
    "anything",
    "stuff",
    "like",
    "that",
    "which",
    "is",
    "are",
    "be",
    "has",
    "have",
    "having",
    "with",
    "and",
    "or",
    "nor",
    "but",
    "of",
    "for",
    "kind",
    "sort",
    "type",
    "i",
    "me",
    "my",
    "we",
    "want",
    "wanna",
    "need",
    "looking",
    "find",
    "play",
    "give",
    "please",
    "really",
    "very",
    "too",
    "much",
    "lots",
    "lot",
    "at",
    "all",
    "in",
    "to",
    "it",
    "its",
    "it's",
    "just",
    "only",
    "kinda",
    "bit",
    "little",
    "by",
    "from",
    "on",
    "sounds",
    "sound",
    "sounding",
    "there",
    "playing",
    "more",
    "yet",
    "though",
    "although",
    "however",
    "instead",
    "rather",
}
_CLAUSE_SPLIT = re.compile(r"[,;:.!?|()\[\]\n]+|\s/\s")
_WORD = re.compile(r"w/o|(?<![\w&])-(?=\w)|[\w'&]+(?:-[\w'&]+)*")
# Inside a negation these split a list of things ruled out ("no vocals or drums"): each counts fully.
_LIST = {"and", "or", "nor", "&"}


@dataclass(frozen=True)
class Phrase:
    """One part of a query, matched to the tags on its own."""

    text: str  # what is embedded (for a negated phrase: without the negation)
    negated: bool


@dataclass(frozen=True)
class TagWeight:
    """How much one tag counts in a query: the explanation of a ranking."""

    vocabulary: str
    tag: str
    weight: float  # share of the query's weight; negative pushes tracks with the tag down
    phrase: str  # the phrase the tag's weight mostly came from
    negated: bool  # that phrase is negated (the weight may still be positive: "no vocals" -> "no vocal")

    def __str__(self) -> str:
        return f"{self.tag} ({self.vocabulary}) {self.weight:+.2f}"


@dataclass(frozen=True)
class QueryWeights:
    """A query turned into one weight per tag (in the order of the vocabularies given)."""

    query: str  # as the model reads it (blanks collapsed, cut to the model's length)
    phrases: tuple[Phrase, ...]
    weights: np.ndarray  # (n_tags,) float32, sum of absolute values 1
    explanation: tuple[TagWeight, ...]  # the tags that drive the query, largest |weight| first
    notices: tuple[str, ...]  # for the person who typed the query (cut, non-English script)


@dataclass(frozen=True)
class Ranking:
    """Tracks ranked for a query, best first, with why."""

    query: str
    tracks: list[tuple[int, float]]  # (track id, score); a score is in standard deviations of the tags
    explanation: tuple[TagWeight, ...]
    phrases: tuple[Phrase, ...]
    notices: tuple[str, ...]

    def explain(self) -> str:
        """One line for a terminal, the tags of each negated phrase apart.

        ``matched tags: piano (mtt) +0.40, solo (mtt) +0.15; not "vocals": vocal (mtt) -0.12,
        no vocal (mtt) +0.06``
        """
        parts = [", ".join(str(t) for t in self.explanation if not t.negated)]
        for phrase in dict.fromkeys(t.phrase for t in self.explanation if t.negated):
            tags = ", ".join(str(t) for t in self.explanation if t.negated and t.phrase == phrase)
            parts.append(f'not "{phrase}": {tags}')
        return "matched tags: " + "; ".join(p for p in parts if p)

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "tracks": [{"track_id": t, "score": round(s, 4)} for t, s in self.tracks],
            "tags": [
                {
                    "vocabulary": t.vocabulary,
                    "tag": t.tag,
                    "weight": round(t.weight, 4),
                    "phrase": t.phrase,
                    "negated": t.negated,
                }
                for t in self.explanation
            ],
            "phrases": [{"text": p.text, "negated": p.negated} for p in self.phrases],
            "notices": list(self.notices),
        }


class TagTable:
    """The tag probabilities of a set of tracks, standardised per tag, ready to score queries.

    ``vocabularies``: ``{name: labels}`` (e.g. ``{"mtt": MTT_LABELS, "msd": MSD_LABELS}``);
    ``track_ids``: ``(n,)``; ``probs``: ``{name: (n, len(labels))}`` with rows aligned to
    ``track_ids`` (a row of NaN for a track without tags in that vocabulary: it counts as
    average there). Build it once per state of the library; scoring is a matrix-vector product.
    """

    def __init__(
        self,
        vocabularies: Mapping[str, Sequence[str]],
        track_ids: Sequence[int] | np.ndarray,
        probs: Mapping[str, np.ndarray],
    ):
        self.track_ids = np.asarray(track_ids).reshape(-1)
        n = len(self.track_ids)
        self.vocabularies: dict[str, list[str]] = {v: [str(t) for t in labels] for v, labels in vocabularies.items()}
        columns = []
        for name, labels in vocabularies.items():
            if name not in probs:
                raise ValueError(f"no tag probabilities for vocabulary {name!r}")
            p = np.asarray(probs[name], np.float32)
            if p.shape != (n, len(labels)):
                raise ValueError(f"tag probabilities of {name!r} are {p.shape}, expected ({n}, {len(labels)})")
            columns.append(p)
        matrix = np.concatenate(columns, axis=1) if columns else np.zeros((n, 0), np.float32)
        known = ~np.isnan(matrix)
        count = np.maximum(known.sum(axis=0), 1)
        mean = np.where(known, matrix, 0).sum(axis=0) / count
        var = np.where(known, (matrix - mean) ** 2, 0).sum(axis=0) / count
        z = (matrix - mean) / np.maximum(np.sqrt(var), STD_FLOOR)
        self.z = np.ascontiguousarray(np.where(known, z, 0), np.float32)  # (n, n_tags)

    def __len__(self) -> int:
        return len(self.track_ids)

    def rank(self, weights: np.ndarray, *, k: int | None = None) -> list[tuple[int, float]]:
        """``(track id, score)`` best first, for one weight per tag (:func:`tag_weights`); ties in track order."""
        scores = self.z @ np.asarray(weights, np.float32)
        n = len(scores) if k is None else min(k, len(scores))
        if n < len(scores):
            best = np.argpartition(-scores, n - 1)[:n]
            order = best[np.lexsort((best, -scores[best]))]
        else:
            order = np.argsort(-scores, kind="stable")
        return list(zip(self.track_ids[order].tolist(), scores[order].astype(float).tolist()))


def parse_query(text: str) -> list[Phrase]:
    """The phrases of a query: clauses split at punctuation, then at negations.

    A negation ("no", "not", "without"...) runs to the end of its clause or to "but", "with",
    "just"..., so "no vocals but heavy drums" asks for drums; "non-" and a leading "-" negate
    one word only. Inside a negation, "and", "or" and "nor" list separate things ruled out:
    "without vocals or drums" and "without vocals and drums" rule out both, each fully (write
    "no vocals, slow" for a slow instrumental). Outside one, "and" does not split ("rock and
    roll", "drum and bass"). Filler words are trimmed; a query of filler only ("music") is
    kept whole.
    """
    phrases: list[Phrase] = []
    for clause in _CLAUSE_SPLIT.split(text.replace("\u2019", "'")):
        words = _WORD.findall(clause.lower().replace("non-", "non "))
        negated, prefix, current = False, False, []
        for word in words + [None]:
            starts = word in _NEGATORS or word in _PREFIXES
            after_prefix = prefix and bool(current) and word is not None and not starts  # "non-vocal| rock"
            resumes = negated and not starts and (word in _RESUME or after_prefix)
            if not (word is None or starts or resumes or (negated and word in _LIST)):
                current.append(word)
                continue
            phrase = _trimmed(current)
            if phrase:
                phrases.append(Phrase(phrase, negated))
            current = [word] if after_prefix else []
            negated, prefix = starts or (negated and not resumes), word in _PREFIXES
    if not phrases and text.strip():
        phrases.append(Phrase(" ".join(text.split()), False))
    return phrases


def _trimmed(words: list[str]) -> str:
    start, end = 0, len(words)
    while start < end and words[start] in _FILLER:
        start += 1
    while end > start and words[end - 1] in _FILLER:
        end -= 1
    return " ".join(words[start:end])


def tag_weights(
    query: str, encoder: TextEncoder, vocabularies: Mapping[str, Sequence[str]], *, temperature: float = TEMPERATURE
) -> QueryWeights:
    """The weight of every tag of ``vocabularies`` for ``query`` (see the module's docstring).

    Raises :class:`UsageError` for a query that cannot be searched (empty, no words the model
    knows) or a temperature that is not positive.
    """
    if not temperature > 0:
        raise UsageError(f"temperature must be > 0, not {temperature}")
    checked = encoder.check_query(query)
    tags = tuple((v, str(t)) for v, labels in vocabularies.items() for t in labels)
    phrases = tuple(parse_query(checked.text))
    labels = {t.lower().replace("-", " ") for _, t in tags}
    words = [_content_words(p.text, labels) if not p.negated else [] for p in phrases]
    texts = [p.text for p in phrases] + [w for ws in words for w in ws]
    sims = encoder.encode(texts) @ _tag_vectors(encoder, tags).T  # (n_texts, n_tags)
    soft = np.exp((sims - sims.max(axis=1, keepdims=True)) / temperature)
    soft /= soft.sum(axis=1, keepdims=True)
    voice = np.array([t in VOICE_TAGS.get(v, ()) for v, t in tags])
    no_voice = np.array([t in NO_VOICE_TAGS.get(v, ()) for v, t in tags])
    rows, at = [], len(phrases)
    for i, phrase in enumerate(phrases):
        w = soft[i]
        if words[i]:
            w = (1 - WORD_SHARE) * w + WORD_SHARE * soft[at : at + len(words[i])].mean(axis=0)
            at += len(words[i])
        rows.append(_negated(w, voice, no_voice) if phrase.negated else w)
    per_phrase = np.stack(rows)
    per_phrase /= np.maximum(np.abs(per_phrase).sum(axis=1, keepdims=True), 1e-12)  # each phrase counts the same
    weights = per_phrase.sum(axis=0)
    weights /= max(float(np.abs(weights).sum()), 1e-12)
    source = np.abs(per_phrase).argmax(axis=0)
    explanation = tuple(
        TagWeight(tags[i][0], tags[i][1], float(weights[i]), phrases[source[i]].text, phrases[source[i]].negated)
        for i in _explained(weights)
    )
    return QueryWeights(checked.text, phrases, weights.astype(np.float32), explanation, checked.notices)


def _content_words(phrase: str, labels: set[str]) -> list[str]:
    """The words of a phrase that describe music, when there are several; a tag's label stays whole.

    "female vocal pop from the 90s" -> "female vocal", "pop", "90s" ("female vocal" is a tag);
    "hip hop beats" -> "hip hop", "beats".
    """
    words = [w for w in phrase.replace("-", " ").split() if w not in _FILLER]
    units, i = [], 0
    while i < len(words):
        n = next((n for n in (3, 2) if i + n <= len(words) and " ".join(words[i : i + n]) in labels), 1)
        units.append(" ".join(words[i : i + n]))
        i += n
    return units if len(units) > 1 else []


def _negated(w: np.ndarray, voice: np.ndarray, no_voice: np.ndarray) -> np.ndarray:
    """A negated phrase's weights: its tags pushed down; ruling out one side of voice/no voice asks for the other."""
    out = -w
    if voice.any() and no_voice.any():
        on_voice, on_no_voice = float(w[voice].sum()), float(w[no_voice].sum())
        wanted, mass = (no_voice, on_voice) if on_voice >= on_no_voice else (voice, on_no_voice)
        out[wanted] = mass / wanted.sum()
    return out


def _explained(weights: np.ndarray) -> list[int]:
    order = np.argsort(-np.abs(weights), kind="stable")
    share = np.cumsum(np.abs(weights[order]))
    n = min(int(np.searchsorted(share, EXPLAIN_SHARE * share[-1])) + 1, EXPLAIN_MAX) if len(order) else 0
    return [int(i) for i in order[:n] if abs(weights[i]) >= EXPLAIN_MIN_WEIGHT] or [int(i) for i in order[:1]]


_TAG_VECTORS: dict[tuple[str, tuple[tuple[str, str], ...]], np.ndarray] = {}
#: The folder of the models directory where tag vectors are kept between runs.
TAG_VECTORS_DIR = "text-vectors"


def _tag_vectors(encoder: TextEncoder, tags: tuple[tuple[str, str], ...]) -> np.ndarray:
    """``(n_tags, dim)`` unit vectors of the tags, computed once per model and set of tags.

    A tag's vector is the mean of its description's and its label's: the description says
    what the tag means, the label matches a one-word query best ("metal" is nearer "metal"
    than "metal music with heavy distorted guitars"). A tag that says a voice is absent is
    its description alone: its label ("no vocal") would sit next to "vocal".

    Encoding the ~100 tags twice takes about a second, longer than the rest of a
    ``tuneseek search``, so the vectors are kept in the process and in a file of the models
    directory named by the encoder's version and the texts (:func:`_tag_vectors_file`).
    """
    key = (str(encoder.path), tags)
    if key in _TAG_VECTORS:
        return _TAG_VECTORS[key]
    described = [describe_tag(v, t) for v, t in tags]
    labelled = [t.lower() for _, t in tags]
    absent = np.array([t in NO_VOICE_TAGS.get(v, ()) for v, t in tags], bool)
    stored = _tag_vectors_file(encoder, described, labelled, absent)
    vectors = _read_vectors(stored, (len(tags), encoder.dim))
    if vectors is None:
        by_description = encoder.encode(described)
        mixed = np.where(absent[:, None], by_description, by_description + encoder.encode(labelled))
        vectors = (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, vectors, allow_pickle=False)
        try:
            stored.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(stored, buf.getvalue())
        except OSError:
            pass  # a models directory that cannot be written: computed again next time, nothing worse
    _TAG_VECTORS[key] = vectors
    return vectors


def _tag_vectors_file(encoder: TextEncoder, described: list[str], labelled: list[str], absent: np.ndarray) -> Path:
    """Where the tag vectors of these texts, by this encoder (its name and weights), are kept."""
    what = json.dumps([encoder.version, described, labelled, absent.tolist()], ensure_ascii=False)
    return default_models_dir() / TAG_VECTORS_DIR / f"{hashlib.sha256(what.encode()).hexdigest()[:32]}.npy"


def _read_vectors(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The float32 array of ``shape`` stored at ``path``; None when it is missing or not that."""
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return vectors if vectors.shape == shape and vectors.dtype == np.float32 else None


def zero_shot(
    query: str, encoder: TextEncoder, table: TagTable, *, k: int | None = None, temperature: float = TEMPERATURE
) -> Ranking:
    """Rank the tracks of ``table`` for ``query``, best first (all of them, or the ``k`` best).

    Raises :class:`UsageError` for a query that cannot be searched or ``k < 1``.
    """
    if k is not None and k < 1:
        raise UsageError(f"k must be at least 1, not {k}")
    qw = tag_weights(query, encoder, table.vocabularies, temperature=temperature)
    return Ranking(qw.query, table.rank(qw.weights, k=k), qw.explanation, qw.phrases, qw.notices)
