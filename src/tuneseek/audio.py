"""Decode any audio file to float32 mono at a chosen rate, blockwise, and write audio files.

Two backends: libsndfile (``soundfile``) and FFmpeg (``av``, PyAV). soundfile is tried first
for WAV/FLAC/AIFF and unknown extensions, with PyAV as the fallback when libsndfile cannot
open a file; PyAV is tried first for Ogg (.ogg/.oga/.opus) and is the only backend for MP3 and
for the containers libsndfile cannot read (m4a, aac, wma, mp4, webm, mka).

Why: decoding the Debian Wesnoth OGG Vorbis tracks (44.1 kHz stereo, one core, decode plus
stereo-to-mono mix) ran at 480-660x real time with libsndfile and 800-1450x with PyAV (ranges:
the machine was shared), and libsndfile failed mid-file on an FFmpeg-made Opus file that PyAV
reads. MP3 and FLAC decode at the same speed in both (~1000-1100x); libsndfile's MP3 decoder
(mpg123) prints warnings straight to stderr on damaged files, so MP3 stays with PyAV. WAV is
faster through libsndfile (4700x vs 4100x). Resampling is cheap next to decoding: soxr HQ
44.1 kHz -> 8 kHz mono runs at ~7500x real time (LQ ~9000x), so ``stream(path, 8000)`` with
HQ runs at ~750-950x real time on Vorbis, and LQ/MQ buy nothing measurable.

Resampling uses ``soxr.ResampleStream`` with its state carried across blocks (~2 s each):
nothing ever holds a whole file at its native rate, and ``stream`` output is identical to
``load`` output (a ``load`` window starts and ends the resampler a little outside the window
so that it matches the same stretch of ``stream`` output).

Every failure is an :class:`~tuneseek.errors.AudioError` naming the file and a short reason
(no such file, is a directory, permission denied, empty file, not a readable audio file (...),
no audio stream, truncated..., no audio samples); backend exceptions are chained, never leaked.
Bad arguments (rate, quality, offset) raise :class:`~tuneseek.errors.UsageError`.
"""

from __future__ import annotations

import math
import os
import secrets
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneseek.errors import AudioError, UsageError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "AudioInfo",
    "is_audio_path",
    "find_audio_files",
    "probe",
    "stream",
    "load",
    "write",
]

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".m4a",
        ".aac",
        ".aif",
        ".aiff",
        ".wma",
        ".mp4",
        ".webm",
        ".mka",
    }
)

# Extensions for which PyAV is tried first (measured faster, or quieter), those that
# libsndfile cannot read at all, and those libsndfile must not be tried on.
_PYAV_FIRST = frozenset({".ogg", ".oga", ".opus"})
_PYAV_ONLY = frozenset({".mp3", ".m4a", ".aac", ".wma", ".mp4", ".webm", ".mka"})

_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
_BLOCK_SECONDS = 2.0  # native-rate block read at a time
_PREROLL_SECONDS = 0.1  # decoded around a load() window so the resampler edges match stream()
_AV_SEEK_PREROLL_SECONDS = 0.5  # PyAV seeks land this early, decoded and dropped
_OGG_MAX_PAGE = 27 + 255 + 255 * 255

# Truncation rule: a header promised more than we could decode, by more than this many
# seconds and by more than this fraction of the promise.
_TRUNC_MIN_SECONDS = 1.0
_TRUNC_MIN_FRACTION = 0.9


# --------------------------------------------------------------------------- paths


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the file name ends in one of :data:`SUPPORTED_EXTENSIONS` (any case)."""
    return os.path.splitext(os.fspath(path))[1].lower() in SUPPORTED_EXTENSIONS


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted, hidden files and folders skipped).

    A file given directly is returned as ``[root]`` whatever its extension. Symbolic links to
    folders are followed once (loops are cut).
    """
    root_p = Path(root)
    if not os.path.exists(root_p):
        raise AudioError(root_p, "no such file or directory")
    if not root_p.is_dir():
        return [root_p]
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root_p, followlinks=True):
        try:
            st = os.stat(dirpath)
            key = (st.st_dev, st.st_ino)
        except OSError:
            dirnames[:] = []
            continue
        if key in seen:  # a link loop or a second link to the same folder
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not is_audio_path(name):
                continue
            p = Path(dirpath, name)
            if p.is_file():
                found.append(p)
    found.sort()
    return found


def _check_path(path: str | os.PathLike) -> str:
    """Fail early, with a plain reason, on what no decoder could read."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise AudioError(p, "no such file") from e
    except PermissionError as e:
        raise AudioError(p, "permission denied") from e
    except OSError as e:
        raise AudioError(p, (e.strerror or str(e)).lower()) from e
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(p, "is a directory")
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the open below
        raise AudioError(p, "not a regular file")
    try:
        with open(p, "rb"):
            pass
    except PermissionError as e:
        raise AudioError(p, "permission denied") from e
    except OSError as e:
        raise AudioError(p, (e.strerror or str(e)).lower()) from e
    if st.st_size == 0:
        raise AudioError(p, "empty file")
    return p


# --------------------------------------------------------------------------- headers


def _riff_promised_frames(path: str) -> int | None:
    """Frames promised by a PCM WAV / AIFF header (both decoders silently clamp to the data)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12:
                return None
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                endian, fmt_id, data_id = "<", b"fmt ", b"data"
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                endian, fmt_id, data_id = ">", b"COMM", b"SSND"
            else:
                return None
            block_align = frames = data_size = None
            for _ in range(64):  # chunk walk; real files have a handful of chunks
                ch = f.read(8)
                if len(ch) < 8:
                    break
                cid = ch[:4]
                (size,) = struct.unpack(endian + "I", ch[4:])
                if cid == fmt_id:
                    body = f.read(min(size, 64))
                    if endian == "<":
                        if len(body) < 16:
                            return None
                        tag, _nch, _sr, _br, align = struct.unpack("<HHIIH", body[:14])
                        if tag not in (1, 3, 6, 7, 0xFFFE) or align == 0:
                            return None  # compressed WAV: blocks are not frames
                        block_align = align
                    else:
                        if len(body) < 6:
                            return None
                        _nch, frames = struct.unpack(">hI", body[:6])
                    f.seek(size - len(body) + (size & 1), os.SEEK_CUR)
                    continue
                if cid == data_id:
                    data_size = size
                    if endian == ">" or block_align is not None:
                        break
                f.seek(size + (size & 1), os.SEEK_CUR)
            if endian == ">":
                return frames or None
            if block_align and data_size and data_size not in (0xFFFFFFFF,):
                return data_size // block_align
    except OSError:
        return None
    return None


def _mp3_has_length_header(path: str) -> bool:
    """True when an MP3 carries a Xing/Info/VBRI frame count (else its length is a guess)."""
    try:
        with open(path, "rb") as f:
            head = f.read(10)
            skip = 0
            if head[:3] == b"ID3" and len(head) == 10:
                size = 0
                for b in head[6:10]:
                    size = (size << 7) | (b & 0x7F)
                skip = 10 + size + (10 if head[5] & 0x10 else 0)
            f.seek(skip)
            first = f.read(4096)
    except OSError:
        return False
    i = first.find(b"\xff")
    while i != -1 and i + 1 < len(first) and (first[i + 1] & 0xE0) != 0xE0:
        i = first.find(b"\xff", i + 1)
    if i == -1:
        return False
    frame = first[i : i + 2048]
    return any(tag in frame[:200] for tag in (b"Xing", b"Info", b"VBRI"))


def _ogg_tail_is_cut(path: str) -> bool:
    """True when an Ogg file ends inside a page (the classic partial download)."""
    try:
        size = os.path.getsize(path)
        n = min(size, 2 * _OGG_MAX_PAGE)
        with open(path, "rb") as f:
            f.seek(size - n)
            buf = f.read(n)
    except OSError:
        return False
    start = buf.find(b"OggS")
    while start != -1:
        j, pages, ok = start, 0, True
        while j + 4 <= len(buf) and buf[j : j + 4] == b"OggS":
            if j + 27 > len(buf):
                return pages > 0  # header itself cut
            if buf[j + 4] != 0:
                ok = False
                break
            nseg = buf[j + 26]
            if j + 27 + nseg > len(buf):
                return pages > 0
            body = sum(buf[j + 27 : j + 27 + nseg])
            end = j + 27 + nseg + body
            if end > len(buf):
                return pages > 0  # last page runs past the end of the file
            pages += 1
            j = end
        if ok and pages:
            return False  # complete pages up to the end, or trailing non-Ogg bytes (tags)
        start = buf.find(b"OggS", start + 1)
    return False


# --------------------------------------------------------------------------- sources


def _sf_reason(e: BaseException) -> str:
    msg = getattr(e, "error_string", None) or str(e)
    if "': " in msg and msg.startswith("Error opening"):
        msg = msg.split("': ", 1)[1]
    msg = msg.strip()
    if msg.lower().startswith("error :"):
        msg = msg[7:].strip()
    return msg.rstrip(".") or type(e).__name__


def _av_reason(e: BaseException) -> str:
    if isinstance(e, EOFError):
        return "no recognisable audio data"
    msg = getattr(e, "strerror", None) or str(e)
    return msg.strip().rstrip(".") or type(e).__name__


def _tags(meta: dict) -> tuple[str | None, str | None]:
    low = {str(k).lower(): v for k, v in meta.items()}

    def get(*keys: str) -> str | None:
        for k in keys:
            v = low.get(k)
            if isinstance(v, (list, tuple)):
                v = v[0] if v else None
            if v is not None and str(v).strip():
                return str(v).strip()
        return None

    return get("title"), get("artist", "author")


class _Source:
    """An open file, one backend. ``blocks`` yields float32 mono (the channels' mean) at the native rate."""

    path: str
    backend: str
    format: str
    sample_rate: int
    channels: int
    frames: int | None  # what the decoder reports, if anything
    promised: int | None  # what a trusted header promises (for the truncation check)
    title: str | None
    artist: str | None
    is_ogg: bool
    eof_at: int | None  # absolute frame index where EOF was met by the last blocks() run

    def blocks(self, start: int, max_frames: int | None) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _mid_error(self, pos: int, reason: str) -> AudioError:
        if pos <= 0:
            return AudioError(self.path, f"not a readable audio file ({reason})")
        return AudioError(self.path, f"truncated or corrupt after {pos / self.sample_rate:.1f} s")


class _SFSource(_Source):
    backend = "soundfile"

    def __init__(self, path: str):
        import soundfile as sf

        self.path = path
        try:
            self._f = sf.SoundFile(path)
        except Exception as e:  # LibsndfileError, RuntimeError, TypeError on odd input
            raise AudioError(path, f"not a readable audio file ({_sf_reason(e)})") from e
        f = self._f
        self.sample_rate = int(f.samplerate)
        self.channels = int(f.channels)
        self.format = str(f.format)
        # libsndfile reports 0 for an empty stream and a huge count when it does not know
        self.frames = int(f.frames) if 0 <= f.frames < 2**62 else None
        if self.sample_rate <= 0 or self.channels <= 0:
            f.close()
            raise AudioError(path, "not a readable audio file (invalid header)")
        self.is_ogg = self.format == "OGG"
        self.promised = self.frames
        if self.format in ("WAV", "WAVEX", "AIFF"):
            hdr = _riff_promised_frames(path)
            if hdr is not None and (self.promised is None or hdr > self.promised):
                self.promised = hdr
        try:
            meta = f.copy_metadata()
        except Exception:
            meta = {}
        self.title, self.artist = _tags(meta)
        self.eof_at = None

    def close(self) -> None:
        self._f.close()

    def blocks(self, start: int, max_frames: int | None) -> Iterator[np.ndarray]:
        f = self._f
        self.eof_at = None
        block = max(1024, int(_BLOCK_SECONDS * self.sample_rate))
        pos = 0
        if start > 0:
            if self.frames is not None and start >= self.frames:
                self.eof_at = self.frames
                return
            seeked = False
            if f.seekable():
                try:
                    pos = f.seek(start)
                    seeked = True
                except Exception:
                    try:
                        f.seek(0)
                    except Exception as e:
                        raise AudioError(self.path, f"cannot seek ({_sf_reason(e)})") from e
                    pos = 0
            if not seeked:  # read and drop
                while pos < start:
                    try:
                        got = len(f.read(min(block, start - pos), dtype="float32", always_2d=True))
                    except Exception as e:
                        raise self._mid_error(pos, _sf_reason(e)) from e
                    if got == 0:
                        self.eof_at = pos
                        return
                    pos += got
        remaining = max_frames
        nch = self.channels
        while remaining is None or remaining > 0:
            n = block if remaining is None else min(block, remaining)
            try:
                a = f.read(n, dtype="float32", always_2d=True)
            except Exception as e:
                raise self._mid_error(pos, _sf_reason(e)) from e
            k = len(a)
            if k:
                pos += k
                if remaining is not None:
                    remaining -= k
                if nch == 1:
                    yield a[:, 0]
                else:
                    m = a[:, 0] + a[:, 1]
                    for c in range(2, nch):
                        m += a[:, c]
                    m *= np.float32(1.0 / nch)
                    yield m
            if k < n:
                self.eof_at = pos
                return


_AV_DTYPES = {
    "u8": np.uint8,
    "s16": np.int16,
    "s32": np.int32,
    "s64": np.int64,
    "flt": np.float32,
    "dbl": np.float64,
}


def _to_float32(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.float32:
        return a
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        out = a.astype(np.float32)
        out -= 128.0
        out *= np.float32(1.0 / 128.0)
        return out
    out = a.astype(np.float32)
    out *= np.float32(1.0 / float(np.iinfo(a.dtype).max + 1))
    return out


class _AVSource(_Source):
    backend = "pyav"

    def __init__(self, path: str):
        self.path = path
        self._c = None
        self._open()
        c, st, cc = self._c, self._st, self._st.codec_context
        names = c.format.name.split(",")
        self.format = "mp4" if "mp4" in names else names[0]
        self.is_ogg = names[0] == "ogg"
        self.sample_rate = int(cc.sample_rate or 0)
        self.channels = int(cc.channels or 0)
        if self.sample_rate <= 0:
            self.close()
            raise AudioError(path, "not a readable audio file (no valid audio header found)")
        tb = st.time_base
        seconds = None
        own = st.duration is not None and tb is not None  # the audio stream's own length
        if own:
            seconds = float(st.duration * tb)
        elif c.duration is not None and c.duration > 0:
            seconds = c.duration / 1_000_000
        self.frames = int(round(seconds * self.sample_rate)) if seconds is not None else None
        # Lengths worth holding a file to (others are guesses from the bit rate): MP3 only
        # with a Xing/Info/VBRI frame count; a container's length only when all it holds is audio.
        trusted = {"ogg", "flac", "mp4", "mov", "wav", "aiff", "asf", "matroska", "w64", "caf"}
        if self.format == "mp3":
            trust = _mp3_has_length_header(path)
        else:
            trust = self.format in trusted and (own or len(c.streams.audio) == len(c.streams))
        self.promised = self.frames if trust else None
        if self.format in ("wav", "aiff"):
            hdr = _riff_promised_frames(path)
            if hdr is not None and (self.promised is None or hdr > self.promised):
                self.promised = hdr
        meta: dict = {}
        for d in (c.metadata or {}, st.metadata or {}):  # Ogg keeps its tags on the stream
            for k, v in d.items():
                meta.setdefault(str(k).lower(), v)
        self.title, self.artist = _tags(meta)
        self.eof_at = None

    def _open(self) -> None:
        import av

        if self._c is not None:
            self._c.close()
            self._c = None
        try:
            c = av.open(self.path, metadata_errors="replace")
        except Exception as e:
            raise AudioError(self.path, f"not a readable audio file ({_av_reason(e)})") from e
        if not c.streams.audio:
            c.close()
            raise AudioError(self.path, "no audio stream")
        self._c = c
        self._st = c.streams.audio[0]

    def close(self) -> None:
        if self._c is not None:
            self._c.close()
            self._c = None

    def _frames(self) -> Iterator:
        """Decoded frames of the audio stream; FFmpeg errors surface as ``_DecodeError``."""
        import av

        c, st = self._c, self._st
        cc = st.codec_context
        try:
            for packet in c.demux(st):
                yield from cc.decode(packet)
        except av.FFmpegError as e:
            raise _DecodeError(_av_reason(e)) from e
        except (OSError, MemoryError) as e:
            raise _DecodeError(str(e)) from e

    def blocks(self, start: int, max_frames: int | None) -> Iterator[np.ndarray]:
        import av

        self.eof_at = None
        sr = self.sample_rate
        block = max(1024, int(_BLOCK_SECONDS * sr))
        frames_it = None
        pos = 0  # absolute frame index of the next decoded sample
        first = None
        if start > 0:
            st = self._st
            tb = st.time_base
            base = st.start_time or 0
            try:
                # Land a little early: MP3/AAC/Opus decoders need a few frames to warm up.
                target = max(0.0, start / sr - _AV_SEEK_PREROLL_SECONDS)
                self._c.seek(base + int(target / tb), stream=st, backward=True, any_frame=False)
                st.codec_context.flush_buffers()
                frames_it = self._frames()
                try:
                    first = next(frames_it)
                except StopIteration:
                    first = None
                ok = first is not None and first.pts is not None
                if ok:
                    pos = int(round(float((first.pts - base) * tb) * sr))
                    ok = pos <= start
            except (av.FFmpegError, _DecodeError, OverflowError, ValueError):
                ok = False
            if not ok:  # inexact or failed seek: decode from the start and drop
                self._open()
                frames_it, first, pos = None, None, 0
        if frames_it is None:
            frames_it = self._frames()

        remaining = max_frames
        pend: list[list] = []  # per plane: list of memoryviews
        pend_n = 0
        key = None  # (format name, planar, channels)

        def flush() -> np.ndarray:
            fmt, planar, nch = key
            dtype = _AV_DTYPES[fmt.rstrip("p")]
            if planar:
                chans = [np.frombuffer(bytearray().join(lst), dtype) for lst in pend]
            else:
                inter = np.frombuffer(bytearray().join(pend[0]), dtype).reshape(-1, nch)
                chans = [inter[:, c] for c in range(nch)]
            if nch == 1:
                return _to_float32(chans[0])
            if dtype is np.float32:
                m = chans[0] + chans[1]
            else:
                m = chans[0].astype(np.float32)
                m += chans[1]
            for c in chans[2:]:
                m += c
            return _scale_channel_sum(m, dtype, nch)

        def frame_iter():
            if first is not None:
                yield first
            yield from frames_it

        try:
            for frame in frame_iter():
                n = frame.samples
                if n <= 0:
                    continue
                if frame.sample_rate != sr:
                    raise AudioError(self.path, f"sample rate changes mid-stream ({sr} -> {frame.sample_rate} Hz)")
                skip = 0
                if pos < start:
                    skip = min(n, start - pos)
                    pos += skip
                    if skip == n:
                        continue
                take = n - skip
                if remaining is not None and take > remaining:
                    take = remaining
                fmt = frame.format
                nch = frame.layout.nb_channels
                k = (fmt.name, fmt.is_planar, nch)
                if k != key:
                    if pend_n:
                        yield flush()
                    key = k
                    pend = [[] for _ in range(nch if fmt.is_planar else 1)]
                    pend_n = 0
                bps = fmt.bytes
                if fmt.is_planar:
                    a, b = skip * bps, (skip + take) * bps
                    for lst, plane in zip(pend, frame.planes):
                        lst.append(memoryview(plane)[a:b])
                else:
                    a, b = skip * bps * nch, (skip + take) * bps * nch
                    pend[0].append(memoryview(frame.planes[0])[a:b])
                pend_n += take
                pos += take
                if remaining is not None:
                    remaining -= take
                if pend_n >= block:
                    yield flush()
                    pend = [[] for _ in pend]
                    pend_n = 0
                if remaining is not None and remaining <= 0:
                    break
            else:
                self.eof_at = pos
        except _DecodeError as e:
            raise self._mid_error(pos, e.reason) from e.__cause__
        except (KeyError, ValueError) as e:  # an odd sample format
            raise AudioError(self.path, f"unsupported sample format ({e})") from e
        if pend_n:
            yield flush()


def _scale_channel_sum(m: np.ndarray, dtype, nch: int) -> np.ndarray:
    """Finish a channel sum of integer/double samples: offset, scale, average."""
    if dtype is np.uint8:
        m -= 128.0 * nch
        m *= np.float32(1.0 / (128.0 * nch))
    elif dtype in (np.float32, np.float64):
        m *= np.float32(1.0 / nch)
    else:
        m *= np.float32(1.0 / (float(np.iinfo(dtype).max + 1) * nch))
    return m


class _DecodeError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _open_source(path: str | os.PathLike) -> _Source:
    p = _check_path(path)
    ext = os.path.splitext(p)[1].lower()
    if ext in _PYAV_ONLY:
        order = (_AVSource,)
    elif ext in _PYAV_FIRST:
        order = (_AVSource, _SFSource)
    else:
        order = (_SFSource, _AVSource)
    first_err: AudioError | None = None
    for cls in order:
        try:
            return cls(p)
        except AudioError as e:
            if e.reason == "no audio stream":
                raise
            if first_err is None:
                first_err = e
    assert first_err is not None
    raise first_err


def _check_end(src: _Source, start: int, got: int) -> None:
    """Called after a read met EOF: truncation, cut Ogg pages, nothing decoded."""
    end = src.eof_at if src.eof_at is not None else start + got
    sr = src.sample_rate
    p = src.promised
    if p is not None and p - end > _TRUNC_MIN_SECONDS * sr and end < _TRUNC_MIN_FRACTION * p:
        raise AudioError(src.path, f"truncated: header promises {p / sr:.1f} s, only {end / sr:.1f} s decodable")
    if src.is_ogg and _ogg_tail_is_cut(src.path):
        raise AudioError(src.path, f"truncated or corrupt after {end / sr:.1f} s")
    if start == 0 and got == 0:
        raise AudioError(src.path, "no audio samples")


def _checked_blocks(src: _Source, start: int, max_frames: int | None) -> Iterator[np.ndarray]:
    got = 0
    for blk in src.blocks(start, max_frames):
        got += len(blk)
        yield blk
    if src.eof_at is not None:
        _check_end(src, start, got)


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding it."""

    path: str
    duration: float | None
    sample_rate: int
    channels: int
    title: str | None
    artist: str | None
    format: str


def probe(path: str | os.PathLike) -> AudioInfo:
    """Header and tags only: duration (s, None when unknown), native rate, channels, tags."""
    with _open_source(path) as src:
        dur = src.frames / src.sample_rate if src.frames is not None else None
        return AudioInfo(
            path=src.path,
            duration=dur,
            sample_rate=src.sample_rate,
            channels=src.channels,
            title=src.title,
            artist=src.artist,
            format=src.format,
        )


def _check_rate_quality(sr: int, quality: str) -> str:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise UsageError(f"sample rate must be a positive integer, got {sr!r}")
    q = str(quality).upper()
    if q not in _QUALITIES:
        raise UsageError(f"resampling quality must be one of {', '.join(_QUALITIES)}, got {quality!r}")
    return q


def _resampled(
    src: _Source, sr: int, quality: str, start: int, max_frames: int | None, discard: int = 0
) -> Iterator[np.ndarray]:
    """Mono float32 pieces at ``sr``, of whatever size the resampler gives."""
    native = _checked_blocks(src, start, max_frames)
    if src.sample_rate == sr:
        yield from native
        return
    import soxr

    rs = soxr.ResampleStream(src.sample_rate, sr, 1, dtype="float32", quality=quality)
    for blk in native:
        y = rs.resample_chunk(blk)
        if discard:
            d = min(discard, len(y))
            y = y[d:]
            discard -= d
        if len(y):
            yield y
    y = rs.resample_chunk(np.zeros(0, np.float32), last=True)
    if discard:
        y = y[discard:]
    if len(y):
        yield y


def from_samples(samples: np.ndarray, sr: int | None, target: int, *, quality: str = "HQ") -> np.ndarray:
    """Samples handed to the API (mono, or channels on either axis) as mono float32 at ``target`` Hz.

    Raises :class:`UsageError` when ``sr`` is missing: samples mean nothing without their rate.
    """
    if sr is None:
        raise UsageError("audio given as samples needs its sample rate: sr=")
    x = np.asarray(samples, np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[1] < x.shape[0] else 0)
    if sr != target:
        import soxr

        x = soxr.resample(x, sr, target, quality=_check_rate_quality(target, quality)).astype(np.float32)
    return x


def stream(
    path: str | os.PathLike, sr: int, *, chunk_seconds: float = 30.0, quality: str = "HQ"
) -> Iterator[np.ndarray]:
    """Yield the file as float32 mono at ``sr`` in chunks of ``round(chunk_seconds * sr)``
    samples (the last one shorter), decoding and resampling block by block.

    The file is opened now, so a missing or unreadable file fails at the call; decoding
    problems (truncation, corrupt data, no samples) are raised during iteration.
    """
    q = _check_rate_quality(sr, quality)
    try:
        cs = float(chunk_seconds)
    except (TypeError, ValueError):
        cs = math.nan
    if not math.isfinite(cs) or cs <= 0:
        raise UsageError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
    src = _open_source(path)
    return _stream_gen(src, int(sr), q, max(1, int(round(cs * sr))))


def _stream_gen(src: _Source, sr: int, quality: str, chunk: int) -> Iterator[np.ndarray]:
    with src:
        pend: list[np.ndarray] = []
        n = 0
        for y in _resampled(src, sr, quality, 0, None):
            pend.append(y)
            n += len(y)
            if n >= chunk:
                buf = np.concatenate(pend) if len(pend) > 1 else pend[0]
                i = 0
                while n - i >= chunk:
                    yield buf[i : i + chunk]
                    i += chunk
                rest = buf[i:]
                pend = [rest] if len(rest) else []
                n = len(rest)
        if n:
            yield np.concatenate(pend) if len(pend) > 1 else pend[0]


def load(
    path: str | os.PathLike,
    sr: int,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    quality: str = "HQ",
) -> np.ndarray:
    """The file (or ``duration`` seconds from ``offset``) as one float32 mono array at ``sr``.

    Seeks where the backend can, so a window from the middle of a long file is cheap. A window
    past the end of the file gives an empty array.
    """
    q = _check_rate_quality(sr, quality)
    if offset is None or not math.isfinite(offset) or offset < 0:
        raise UsageError(f"offset must be a non-negative number of seconds, got {offset!r}")
    if duration is not None and (not math.isfinite(duration) or duration < 0):
        raise UsageError(f"duration must be a non-negative number of seconds, got {duration!r}")
    sr = int(sr)
    with _open_source(path) as src:
        nat = src.sample_rate
        start = int(round(offset * nat))
        max_frames = None if duration is None else int(round(duration * nat))
        want = None if duration is None else int(round(duration * sr))
        if max_frames == 0:
            return np.zeros(0, np.float32)
        # Start the resampler a little early, on a whole number of in/out periods, so that a
        # window matches the same stretch of stream() output.
        discard = 0
        if nat != sr:
            g = math.gcd(nat, sr)
            unit_in, unit_out = nat // g, sr // g
            kmax = max(1, math.ceil(_PREROLL_SECONDS * nat / unit_in))
            k = min(start // unit_in, kmax)
            start -= k * unit_in
            discard = k * unit_out
            if max_frames is not None:  # and end a little after, trimmed below
                max_frames += (k + kmax) * unit_in
        pieces = list(_resampled(src, sr, q, start, max_frames, discard))
    if not pieces:
        return np.zeros(0, np.float32)
    out = np.concatenate(pieces) if len(pieces) != 1 else pieces[0]
    if want is not None and len(out) > want:
        out = out[:want]
    return np.ascontiguousarray(out, dtype=np.float32)


# --------------------------------------------------------------------------- writing

_SF_WRITE = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".aif": ("AIFF", "PCM_16"),
    ".aiff": ("AIFF", "PCM_16"),
}
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
# extension -> (muxer, encoder, rates, bit rate per channel)
_AV_WRITE = {
    ".mp3": ("mp3", "libmp3lame", _MP3_RATES, 96_000),
    ".m4a": ("ipod", "aac", _AAC_RATES, 96_000),
    ".opus": ("ogg", "libopus", _OPUS_RATES, 64_000),
}


def write(path: str | os.PathLike, audio: np.ndarray, sr: int) -> None:
    """Write float audio (shape (frames,) or (frames, channels), nominally in [-1, 1]).

    The format follows the extension: .wav/.aif(f)/.flac as 16-bit PCM and .ogg/.oga as
    Vorbis through libsndfile; .mp3, .m4a (AAC) and .opus through FFmpeg (resampled to a
    rate the codec supports when needed, at most 2 channels). The file appears atomically:
    written aside in the same folder, flushed to disk, then renamed over ``path``.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in _SF_WRITE and ext not in _AV_WRITE:
        can = ", ".join(sorted(set(_SF_WRITE) | set(_AV_WRITE)))
        raise AudioError(p, f"cannot write '{ext or p.name}' files (can write {can})")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(p, f"invalid sample rate {sr!r}")
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] < 1:
        raise AudioError(p, f"audio must have shape (frames,) or (frames, channels), got {np.shape(audio)}")
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(p, f"audio must be floating point, got {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise AudioError(p, "audio contains NaN or infinite values")
    if ext in _AV_WRITE and a.shape[1] > 2:
        raise AudioError(p, f"cannot write {a.shape[1]}-channel audio as {ext} (at most 2 channels)")
    if not p.parent.is_dir():
        raise AudioError(p, "no such directory")
    tmp = p.parent / f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ext}"
    try:
        if ext in _SF_WRITE:
            _write_sf(tmp, a, int(sr), *_SF_WRITE[ext])
        else:
            _write_av(tmp, a, int(sr), ext)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except AudioError:
        _unlink_quiet(tmp)
        raise
    except Exception as e:
        _unlink_quiet(tmp)
        reason = getattr(e, "strerror", None) or _sf_reason(e)
        raise AudioError(p, f"cannot write ({reason})") from e
    try:  # make the rename itself durable; best effort
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _unlink_quiet(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _write_sf(tmp: Path, a: np.ndarray, sr: int, fmt: str, subtype: str) -> None:
    import soundfile as sf

    if subtype.startswith("PCM"):
        a = np.clip(a, -1.0, 1.0)  # libsndfile wraps around instead of clipping
    with sf.SoundFile(tmp, "w", samplerate=sr, channels=a.shape[1], format=fmt, subtype=subtype) as f:
        step = max(1, sr * 10)
        for i in range(0, len(a), step):
            f.write(a[i : i + step])


def encode_planar(container, stream, planar: np.ndarray, rate: int, layout: str) -> None:
    """Encode float32 planar audio ``(channels, samples)`` into an open PyAV output stream, then flush it."""
    import av

    step = rate  # one second per frame handed to the encoder (PyAV re-frames it)
    for i in range(0, planar.shape[1], step):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i : i + step]), format="fltp", layout=layout)
        fr.sample_rate = rate
        fr.pts = i
        for pkt in stream.encode(fr):
            container.mux(pkt)
    for pkt in stream.encode(None):
        container.mux(pkt)


def _write_av(tmp: Path, a: np.ndarray, sr: int, ext: str) -> None:
    import av

    muxer, codec, rates, rate_per_ch = _AV_WRITE[ext]
    nch = a.shape[1]
    rate = sr if sr in rates else min((r for r in rates if r >= sr), default=max(rates))
    if rate != sr:
        import soxr

        a = soxr.resample(a, sr, rate, quality="HQ").astype(np.float32, copy=False)
    layout = "mono" if nch == 1 else "stereo"
    planar = np.ascontiguousarray(np.clip(a, -1.0, 1.0).T)
    options = {"movflags": "+faststart"} if muxer == "ipod" else {}  # index first: streamable
    with av.open(str(tmp), "w", format=muxer, options=options) as out:
        st = out.add_stream(codec, rate=rate, layout=layout)
        st.codec_context.bit_rate = rate_per_ch * nch
        encode_planar(out, st, planar, rate, layout)
