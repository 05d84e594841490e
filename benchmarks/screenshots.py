"""Screenshots of the web page's views, for the README: docs/screenshots/*.png at desktop and phone widths.

Indexes some music into a temporary library (``--music DIR``: your files, the first ``--tracks``
of them; without it, synthetic tracks), serves it with ``tuneseek serve``'s application on a
free port of this machine, and photographs each view in Chromium (Debian's, through Playwright)
as a person uses it: a clip identified, the microphone listening (Chromium's fake microphone
playing a clip), a search, a track page with its tag curve, the library with its map, and a
monitored recording. The PNGs are reduced to 256 colours to keep them small. Tags, search and
the map need the musicnn weights (``tuneseek models``); without them those views show what the
page says when they are missing::

    python benchmarks/screenshots.py --music /usr/share/games/wesnoth/1.16/data/core/music --tracks 10
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import uvicorn
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from code_snapshot import REPO
from tuneseek import Library
from tuneseek.audio import find_audio_files, load
from tuneseek.server.app import create_app
from tuneseek.synth import synth_catalog

SR = 22050
DESKTOP = {"width": 1200, "height": 820}
PHONE = {"width": 375, "height": 760}


def serve(library: Library):
    """``(base URL, stop)`` of the application over ``library`` under uvicorn on a free port, once it is ready."""
    server = uvicorn.Server(uvicorn.Config(create_app(library), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    while httpx.get(f"{url}/ready").status_code != 200:
        time.sleep(0.1)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return url, stop


def excerpt(path: str, start: float, seconds: float) -> np.ndarray:
    return load(path, SR, offset=start, duration=seconds)


def small_png(path: Path) -> None:
    """The screenshot at 256 colours (a third of the bytes or less; flat colours survive)."""
    with Image.open(path) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def shoot(page, out: Path, name: str, full_page: bool = False) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    small_png(path)
    print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {path.stat().st_size // 1024} kB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--music", type=Path, help="a folder of music to index (default: synthetic tracks)")
    ap.add_argument("--tracks", type=int, default=10, help="index at most this many files (default 10)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    ap.add_argument("--query", default="calm strings and flute, no drums", help="the search shown")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="tuneseek-shots-") as tmp:
        tmp = Path(tmp)
        if a.music:
            music = [str(p) for p in find_audio_files(a.music)[: a.tracks]]
        else:
            (tmp / "music").mkdir()
            music = []
            for t in synth_catalog(a.tracks, duration=60.0, sr=SR, seed=7):
                sf.write(tmp / "music" / f"{t.name}.flac", t.audio, SR)
                music.append(str(tmp / "music" / f"{t.name}.flac"))
        with Library.open(tmp / "my-music") as lib:
            t0 = time.perf_counter()
            report = lib.add(music, workers=2)
            print(f"indexed: {report.summary()} in {time.perf_counter() - t0:.0f} s")
            tracks = [t for t in lib.tracks() if t.duration >= 60] or lib.tracks()
            first, second, third = tracks[0], tracks[len(tracks) // 2], tracks[-1]
            clip = tmp / "clip.wav"
            sf.write(clip, excerpt(first.path, first.duration * 0.4, 8.0), SR, subtype="PCM_16")
            mic = tmp / "mic.wav"
            sf.write(mic, excerpt(second.path, second.duration * 0.3, 20.0), SR, subtype="PCM_16")
            gap = np.zeros(3 * SR, np.float32)
            show = np.concatenate(
                [
                    gap,
                    excerpt(first.path, 10, 40),
                    excerpt(second.path, 30, 35),
                    gap * 2,
                    excerpt(third.path, 5, 45),
                    gap,
                ]
            )
            recording = tmp / "radio-show.wav"
            sf.write(recording, show, SR, subtype="PCM_16")

            url, stop = serve(lib)
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(
                        executable_path=a.chromium,
                        args=[
                            "--use-fake-ui-for-media-stream",
                            "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-audio-capture={mic}",
                        ],
                    )
                    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                        context = browser.new_context(viewport=viewport, permissions=["microphone"])
                        page = context.new_page()
                        page.set_default_timeout(120_000)

                        # Listen: the microphone at work (phone), then a chosen clip identified
                        page.goto(f"{url}/#listen")
                        expect(page.locator("#ready")).to_have_text("ready")
                        if width == "phone":
                            page.get_by_role("button", name="Listen").click()
                            page.wait_for_function("document.querySelector('#countdown').textContent.startsWith('3')")
                            shoot(page, a.out, f"listen-recording-{width}")
                            expect(page.locator("#listen-result .match, #listen-result .nomatch")).to_be_visible()
                        page.set_input_files("#clip-file", str(clip))
                        expect(page.locator("#listen-result .match")).to_be_visible()
                        page.wait_for_function("document.querySelector('#listen-result audio').readyState >= 1")
                        shoot(page, a.out, f"listen-{width}")

                        # Search
                        page.goto(f"{url}/#search?q={a.query}")
                        expect(page.locator("#search-results .results li, #search-status.error").first).to_be_visible()
                        shoot(page, a.out, f"search-{width}")

                        # Track page, with the tag curve
                        page.goto(f"{url}/#track/{first.id}")
                        expect(page.locator(".similar .results li, .similar .error").first).to_be_visible()
                        if width == "desktop":
                            page.get_by_role("button", name="Show tags over time").click()
                            expect(page.locator(".curve svg, .curve .error").first).to_be_visible()
                        shoot(page, a.out, f"track-{width}", full_page=width == "desktop")

                        if width == "desktop":
                            # Library: list, stats and map
                            page.goto(f"{url}/#library")
                            expect(page.locator("#map svg, #map-status.error").first).to_be_visible()
                            page.locator(f"#map a[href='#track/{second.id}']").hover()
                            shoot(page, a.out, f"library-{width}", full_page=True)

                            # Monitor: a recording's timeline
                            page.goto(f"{url}/#monitor")
                            page.set_input_files("#monitor-file", str(recording))
                            page.get_by_role("button", name="Find the tracks").click()
                            expect(page.locator("#monitor-status")).to_contain_text("Done")
                            shoot(page, a.out, f"monitor-{width}")
                        context.close()
                    browser.close()
            finally:
                stop()


if __name__ == "__main__":
    main()
