"""Short English descriptions of the musicnn tags, for matching text queries to tags.

A sentence encoder compares sentences better than bare labels: "female" alone could be
anything, "a woman singing" is what the MagnaTagATune tag means. Zero-shot search embeds
these descriptions once and weighs each track's tag probabilities by how close the query is
to each description (:mod:`tuneseek.text.zeroshot`).

The keys are exactly the labels of :data:`tuneseek.embed.weights.MTT_LABELS` and
:data:`~tuneseek.embed.weights.MSD_LABELS` (a test checks that every label has one). A
vocabulary or label not listed here (a tagger trained on the user's own data) falls back to
``"<label> music"``.

The tags that say a voice is *absent* ("no vocal", "instrumental"...) are described without a
negation ("instrumental music, a piece played on instruments only"): sentence encoders hardly
see negation, so "music without singing" would sit next to "singing" and a query for singing
would pull instrumental tracks up. Their relation to the vocal tags is spelt out instead, in
:data:`VOICE_TAGS` and :data:`NO_VOICE_TAGS`.
"""

from __future__ import annotations

__all__ = ["TAG_DESCRIPTIONS", "VOICE_TAGS", "NO_VOICE_TAGS", "describe_tag"]

TAG_DESCRIPTIONS: dict[str, dict[str, str]] = {
    # MagnaTagATune top-50 (musicnn's "mtt" tagger)
    "mtt": {
        "guitar": "guitar music",
        "classical": "classical music",
        "slow": "slow music with a slow tempo",
        "techno": "techno, electronic dance music with a pounding beat",
        "strings": "a string section, violins and cellos",
        "drums": "drums and percussion",
        "electronic": "electronic music made with synthesizers",
        "rock": "rock music",
        "fast": "fast music with a quick tempo",
        "piano": "piano music",
        "ambient": "ambient music, atmospheric and spacious",
        "beat": "music with a strong beat",
        "violin": "a violin playing",
        "vocal": "vocals, a singer",
        "synth": "synthesizer sounds",
        "female": "a woman singing",
        "indian": "Indian music with sitar and tabla",
        "opera": "opera singing",
        "male": "a man singing",
        "singing": "someone singing",
        "vocals": "vocals, a singer",
        "no vocals": "instrumental music, a piece played on instruments only",
        "harpsichord": "a harpsichord playing, baroque music",
        "loud": "loud music",
        "quiet": "quiet music",
        "flute": "a flute playing",
        "woman": "a woman's voice",
        "male vocal": "a male vocalist singing",
        "no vocal": "instrumental music, a piece played on instruments only",
        "pop": "pop music",
        "soft": "soft, gentle music",
        "sitar": "a sitar playing",
        "solo": "a solo instrument playing alone",
        "man": "a man's voice",
        "classic": "classical music",
        "choir": "a choir singing",
        "voice": "a human voice",
        "new age": "new age music, calm and meditative",
        "dance": "dance music",
        "male voice": "a man's singing voice",
        "female vocal": "a female vocalist singing",
        "beats": "electronic beats",
        "harp": "a harp playing",
        "cello": "a cello playing",
        "no voice": "instrumental music, a piece played on instruments only",
        "weird": "strange, weird-sounding music",
        "country": "country music",
        "metal": "metal music with heavy distorted guitars",
        "female voice": "a woman's singing voice",
        "choral": "choral music sung by a choir",
    },
    # Million Song Dataset top-50 last.fm tags (musicnn's "msd" tagger)
    "msd": {
        "rock": "rock music",
        "pop": "pop music",
        "alternative": "alternative music",
        "indie": "indie music",
        "electronic": "electronic music made with synthesizers",
        "female vocalists": "songs sung by a female singer",
        "dance": "dance music",
        "00s": "music from the 2000s",
        "alternative rock": "alternative rock music",
        "jazz": "jazz music",
        "beautiful": "beautiful music",
        "metal": "metal music with heavy distorted guitars",
        "chillout": "chillout music, relaxed and laid-back",
        "male vocalists": "songs sung by a male singer",
        "classic rock": "classic rock music",
        "soul": "soul music",
        "indie rock": "indie rock music",
        "Mellow": "mellow, calm music",
        "electronica": "electronica, electronic music",
        "80s": "music from the 1980s",
        "folk": "folk music",
        "90s": "music from the 1990s",
        "chill": "chill, relaxing music",
        "instrumental": "instrumental music, a piece played on instruments only",
        "punk": "punk rock music",
        "oldies": "oldies, old popular songs",
        "blues": "blues music",
        "hard rock": "hard rock music",
        "ambient": "ambient music, atmospheric and spacious",
        "acoustic": "acoustic music played on acoustic instruments",
        "experimental": "experimental music",
        "female vocalist": "songs sung by a female singer",
        "guitar": "guitar music",
        "Hip-Hop": "hip-hop music with rapping",
        "70s": "music from the 1970s",
        "party": "party music",
        "country": "country music",
        "easy listening": "easy listening music",
        "sexy": "sexy, sensual music",
        "catchy": "a catchy song",
        "funk": "funk music",
        "electro": "electro, electronic dance music",
        "heavy metal": "heavy metal music",
        "Progressive rock": "progressive rock music",
        "60s": "music from the 1960s",
        "rnb": "R&B, rhythm and blues music",
        "indie pop": "indie pop music",
        "sad": "sad music",
        "House": "house music, electronic dance music",
        "happy": "happy, cheerful music",
    },
}

# Tags that say a voice is present, and tags that say it is absent: a query that rules out
# the one ("no vocals", "not instrumental") asks for the other.
# Only the tags that say "a voice" and nothing more: "no female singer" rules out a woman's
# voice, not every voice, so it must not pull instrumental tracks up.
VOICE_TAGS: dict[str, frozenset[str]] = {
    "mtt": frozenset({"vocal", "vocals", "singing", "voice"}),
}
NO_VOICE_TAGS: dict[str, frozenset[str]] = {
    "mtt": frozenset({"no vocal", "no vocals", "no voice"}),
    "msd": frozenset({"instrumental"}),
}


def describe_tag(vocabulary: str, tag: str) -> str:
    """The description of ``tag`` in ``vocabulary``; ``"<tag> music"`` for a tag not listed."""
    return TAG_DESCRIPTIONS.get(vocabulary, {}).get(tag, f"{tag} music")
