"""The embedding map as one self-contained HTML page: an inline SVG scatter and a small script.

Each dot is a window of a track; hovering it shows the track, its label and where the window
starts ("1:23.4"), and rings the other windows of the same track. The page loads nothing (no
CDN, no fonts, no network), so it opens anywhere, offline, from the run folder.

Names come from the file system and the dataset, so they are treated as hostile: in markup
they go through :func:`html.escape`; in the script they are JSON with ``<``, ``>`` and ``&``
written as ``\\u`` escapes, so that no name can close the script element (``</script>``) or
open a comment, and the script reads them with ``textContent`` only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuneseek.fileio import atomic_write_bytes
from tuneseek.plots import label_colours

WIDTH, HEIGHT, MARGIN = 760, 640, 16


def clock(seconds: float) -> str:
    """``83.4`` -> ``"1:23.4"`` (minutes, seconds to a tenth)."""
    tenths = round(seconds * 10)
    return f"{tenths // 600}:{tenths % 600 / 10:04.1f}"


def script_json(value) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` left raw."""
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_html(
    path: Path,
    *,
    xy: np.ndarray,
    classes: np.ndarray,
    labels: Sequence[str],
    tracks: Sequence[str],
    seconds: Sequence[float],
    title: str,
    caption: str = "",
) -> Path:
    """Write the map of points ``xy`` (one per window: its class index into ``labels``, its track's
    name, its start in seconds) to ``path``; ``title`` heads the page, ``caption`` says what it shows."""
    xy = np.asarray(xy, np.float64)
    classes = np.asarray(classes, np.int64)
    names = sorted(set(tracks))
    track_index = {name: i for i, name in enumerate(names)}
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    px = MARGIN + (xy[:, 0] - lo[0]) / scale[0] * (WIDTH - 2 * MARGIN)
    py = HEIGHT - MARGIN - (xy[:, 1] - lo[1]) / scale[1] * (HEIGHT - 2 * MARGIN)  # y up, as in the PNG
    order = np.random.default_rng(0).permutation(len(xy))  # the PNG's order: no class buried under another
    dots = "\n".join(
        f'<circle cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="3.5" class="c{classes[i]}" data-i="{i}"/>' for i in order
    )
    colours = label_colours(len(labels))
    counts = np.bincount(classes, minlength=len(labels))
    style = "\n".join(f".c{c} {{fill: {colour}}}" for c, colour in enumerate(colours))
    legend = "\n".join(
        f'<li><span class="swatch" style="background: {colours[c]}"></span>{html.escape(labels[c])} '
        f'<span class="n">({counts[c]})</span></li>'
        for c in np.flatnonzero(counts)
    )
    data = {
        "labels": list(labels),
        "tracks": names,
        "points": [[int(c), track_index[t], clock(s)] for c, t, s in zip(classes, tracks, seconds)],
    }
    page = _PAGE.format(
        title=html.escape(title),
        caption=html.escape(caption),
        style=style,
        legend=legend,
        width=WIDTH,
        height=HEIGHT,
        dots=dots,
        data=script_json(data),
    )
    atomic_write_bytes(Path(path), page.encode("utf-8"))
    return Path(path)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{font-family: system-ui, sans-serif; margin: 1.5em; color: #222}}
h1 {{font-size: 1.2em; margin: 0 0 0.2em}}
p {{margin: 0 0 1em; color: #555}}
.map {{display: flex; gap: 1.5em; align-items: flex-start}}
svg {{border: 1px solid #ccc; background: #fff}}
circle {{fill-opacity: 0.8; stroke: none}}
circle.same {{stroke: #000; stroke-width: 1.5; fill-opacity: 1}}
ul {{list-style: none; padding: 0; margin: 0}}
li {{margin: 0.15em 0}}
.swatch {{display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%; margin-right: 0.4em}}
.n {{color: #888}}
#tip {{position: fixed; display: none; pointer-events: none; background: #fffbe6; border: 1px solid #999;
  padding: 0.3em 0.5em; font-size: 0.9em; white-space: pre}}
{style}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{caption}</p>
<div class="map">
<svg id="map" width="{width}" height="{height}" viewBox="0 0 {width} {height}">
{dots}
</svg>
<ul>
{legend}
</ul>
</div>
<div id="tip"></div>
<script>
const data = {data};
const tip = document.getElementById("tip");
const dots = Array.from(document.querySelectorAll("#map circle"));
const byTrack = new Map();
for (const dot of dots) {{
  const track = data.points[dot.dataset.i][1];
  if (!byTrack.has(track)) byTrack.set(track, []);
  byTrack.get(track).push(dot);
}}
let ringed = [];
document.getElementById("map").addEventListener("mousemove", (event) => {{
  const dot = event.target.closest("circle");
  for (const d of ringed) d.classList.remove("same");
  ringed = [];
  if (!dot) {{ tip.style.display = "none"; return; }}
  const [label, track, time] = data.points[dot.dataset.i];
  tip.textContent = data.tracks[track] + "\\n" + data.labels[label] + ", window from " + time;
  tip.style.left = (event.clientX + 12) + "px";
  tip.style.top = (event.clientY + 12) + "px";
  tip.style.display = "block";
  ringed = byTrack.get(track);
  for (const d of ringed) d.classList.add("same");
}});
document.getElementById("map").addEventListener("mouseleave", () => {{
  tip.style.display = "none";
  for (const d of ringed) d.classList.remove("same");
  ringed = [];
}});
</script>
</body>
</html>
"""
