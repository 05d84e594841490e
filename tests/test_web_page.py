"""The web page in a real browser: Chromium, driven by Playwright, against `tuneseek serve` on a port of this machine.

One server (a library of the six test tracks, tagged and embedded by the stand-in musicnn) and one
browser serve the whole module. The browser's microphone is Chromium's fake capture device, playing
a WAV cut from a library track, so the Listen button is tested end to end: getUserMedia, the
recording, the WAV the page encodes, the upload and the answer shown.

Needs Playwright (the test extra) and a Chromium binary on the PATH (Debian: apt-get install
chromium); Playwright's own browser download is not used. Skipped, saying why, without them.
"""

import base64
import re
import shutil
import threading
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the web page's tests need Playwright (pip install playwright)"
)

from conftest import SR
from tuneseek import Library
from tuneseek.server.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if CHROMIUM is None:
    pytest.skip(
        "the web page's tests need a Chromium binary on the PATH (apt-get install chromium)", allow_module_level=True
    )

expect = sync_api.expect
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
CLIP_TRACK, CLIP_START = 3, 5.0  # the clip chosen as a file: track 3 from 5 s
MIC_TRACK, MIC_START = 4, 2.0  # what the fake microphone plays: track 4 from 2 s, looped


def excerpt(library: Library, track_id: int, start: float, seconds: float) -> np.ndarray:
    audio, sr = sf.read(library.track(track_id).path, dtype="float32")
    assert sr == SR
    return audio[int(start * SR) : int((start + seconds) * SR)]


@pytest.fixture(scope="module")
def files(tmp_path_factory, music_dir):
    """The WAVs and the text file the tests give the page (16-bit PCM: what Chromium's fake microphone reads)."""
    return tmp_path_factory.mktemp("web-files")


@pytest.fixture(scope="module")
def server(tmp_path_factory, music_dir, models, files, stranger):
    """`tuneseek serve`'s application under uvicorn on a free port, warm; yields (base URL, library)."""
    with Library.open(tmp_path_factory.mktemp("web") / "lib") as lib:
        lib.add([music_dir], workers=1)
        sf.write(files / "clip.wav", excerpt(lib, CLIP_TRACK, CLIP_START, 6.0), SR, subtype="PCM_16")
        sf.write(files / "mic.wav", excerpt(lib, MIC_TRACK, MIC_START, 12.0), SR, subtype="PCM_16")
        gap = np.zeros(2 * SR, np.float32)
        mix = np.concatenate([gap, excerpt(lib, 2, 0.0, 10.0), excerpt(lib, 5, 5.0, 10.0), gap])
        sf.write(files / "recording.wav", mix, SR, subtype="PCM_16")
        sf.write(files / "stranger.wav", stranger[: 6 * SR], SR, subtype="PCM_16")
        (files / "notes.txt").write_text("these are notes, not music\n" * 20)

        config = uvicorn.Config(create_app(lib), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = srv.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        import httpx

        while httpx.get(f"{url}/ready").status_code != 200:  # the page is tested warm (503 while warming)
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.05)
        try:
            yield url, lib
        finally:
            srv.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium(files, server):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-ui-for-media-stream",  # say yes to the microphone without asking
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={files / 'mic.wav'}",
                "--autoplay-policy=no-user-gesture-required",
                "--host-resolver-rules=MAP insecure.test 127.0.0.1",  # the server by a name that is not localhost
            ],
        )
        yield b
        b.close()


@pytest.fixture
def open_page(chromium, server):
    """A function opening the page (at a hash, a width) in a fresh context; the page's errors kept in ``page.errors``."""
    url, _ = server
    contexts = []

    def opened(hash_: str = "", viewport: dict = DESKTOP, query: str = "", host: str = url):
        context = chromium.new_context(viewport=viewport, permissions=["microphone"])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.errors = []
        page.on("console", lambda m: page.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
        page.goto(f"{host}/{query}{hash_}")
        return page

    yield opened
    for c in contexts:
        c.close()


def track_name(server, track_id: int) -> str:
    return server[1].track(track_id).name


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("view", ["#listen", "#search", "#library", "#track/1", "#monitor"])
def test_every_view_loads_without_errors_and_fits_the_screen(open_page, server, viewport, view):
    page = open_page(view, viewport)
    expect(page.locator("#ready")).to_have_text("ready")
    expect(page.locator("#library-line")).to_contain_text("6 tracks")
    expect(page.locator("section.view:visible h1")).to_be_visible()
    if view == "#library":
        expect(page.locator("#track-table tbody tr")).to_have_count(6)
        expect(page.locator("#map circle")).to_have_count(6)
    if view == "#track/1":
        expect(page.locator(".similar .results li").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert page.errors == []
    # nothing wider than the screen: no sideways scrolling on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    # every form control has a label a screen reader can say
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
             .filter((e) => !e.labels?.length && !e.getAttribute('aria-label')).map((e) => e.id)"""
    )
    assert unlabelled == []


def test_a_chosen_file_is_identified_and_the_player_starts_at_the_match(open_page, server, files):
    page = open_page("#listen")
    page.set_input_files("#clip-file", str(files / "clip.wav"))
    result = page.locator("#listen-result .match")
    expect(result.locator(".match-title")).to_have_text(track_name(server, CLIP_TRACK))
    expect(result.locator(".offset")).to_have_text("0:05")
    expect(result.locator("a[href='#track/3']").first).to_be_visible()
    # the player seeks to where the clip is in the track
    page.wait_for_function(
        f"""() => {{
            const a = document.querySelector('#listen-result audio');
            return a && a.readyState >= 1 && Math.abs(a.currentTime - {CLIP_START}) < 0.5;
        }}"""
    )
    assert page.errors == []


def test_listening_through_the_microphone_finds_the_track_it_hears(open_page, server):
    page = open_page("#listen", query="?seconds=4")
    expect(page.locator("#listen-seconds")).to_have_value("4")
    page.get_by_role("button", name="Listen").click()
    expect(page.locator("#meter-box")).to_be_visible()
    expect(page.locator("#listen-result .match-title")).to_have_text(track_name(server, MIC_TRACK), timeout=30_000)
    expect(page.locator("#meter-box")).to_be_hidden()
    expect(page.get_by_role("button", name="Listen")).to_be_enabled()
    assert page.errors == []


def test_a_clip_of_no_library_track_says_no_match(open_page, files):
    page = open_page("#listen")
    page.set_input_files("#clip-file", str(files / "stranger.wav"))
    expect(page.get_by_role("heading", name="No match")).to_be_visible()
    expect(page.locator("#listen-status")).to_have_text("No match.")
    expect(page.locator("#listen-result audio")).to_have_count(0)
    assert page.errors == []


def test_a_file_dropped_on_the_page_is_identified(open_page, server, files):
    page = open_page("#listen")
    dropped = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "dropped.wav", { type: "audio/wav" }));
            return data;
        }""",
        base64.b64encode((files / "clip.wav").read_bytes()).decode(),
    )
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": dropped})
    expect(page.locator("#drop-zone")).to_have_class(re.compile(r"\bover\b"))
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    expect(page.locator("#listen-result .match-title")).to_have_text(track_name(server, CLIP_TRACK))
    expect(page.locator("#drop-zone")).not_to_have_class(re.compile(r"\bover\b"))
    assert page.errors == []


def test_over_plain_http_from_another_host_the_page_says_the_microphone_needs_https(open_page, server, files):
    page = open_page("#listen", host=server[0].replace("127.0.0.1", "insecure.test"))
    assert page.evaluate("window.isSecureContext") is False
    expect(page.locator("#mic-note")).to_contain_text("needs a secure page")
    expect(page.get_by_role("button", name="Listen")).to_be_disabled()
    page.set_input_files("#clip-file", str(files / "clip.wav"))  # a file still works
    expect(page.locator("#listen-result .match-title")).to_have_text(track_name(server, CLIP_TRACK))


def test_similar_to_a_clip_lists_tracks(open_page, server, files):
    page = open_page("#listen")
    page.set_input_files("#clip-file", str(files / "clip.wav"))
    page.get_by_role("button", name="Similar to this clip").click()
    items = page.locator("#clip-similar .results li")
    expect(items.first).to_be_visible()
    assert 1 <= items.count() <= 10
    assert page.errors == []


def test_a_file_that_is_not_audio_shows_the_servers_message(open_page, files):
    page = open_page("#listen")
    page.set_input_files("#clip-file", str(files / "notes.txt"))
    expect(page.locator("#listen-status")).to_contain_text("notes.txt: not an audio file")
    expect(page.locator("#listen-status")).to_have_class("status error")
    expect(page.locator("#listen-result .match")).to_have_count(0)


def test_a_search_shows_ranked_tracks_and_what_drove_them(open_page):
    page = open_page("#search")
    page.get_by_label("Describe the music").fill("rock with guitar")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(re.compile(r"#search\?q=rock%20with%20guitar$"))
    items = page.locator("#search-results .results li")
    expect(items.first).to_be_visible()
    assert items.count() == 6  # k=10 over a library of six
    expect(page.locator("#search-results .explanation")).to_contain_text("matched tags:")
    expect(items.first.get_by_role("button", name="Play")).to_be_visible()
    items.first.get_by_role("button", name="Play").click()
    expect(page.locator("#player")).to_be_visible()
    assert page.errors == []


def test_the_page_is_used_from_the_keyboard_with_visible_focus(open_page):
    page = open_page("#listen")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    page.keyboard.press("Tab")
    listen_tab = page.get_by_role("navigation").get_by_role("link", name="Listen")
    expect(listen_tab).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the Search tab
    expect(page.get_by_role("heading", name="Find music by describing it")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Describe the music")).to_be_focused()
    page.keyboard.type("slow piano")
    page.keyboard.press("Enter")
    expect(page.locator("#search-results .results li").first).to_be_visible()
    assert page.errors == []


def test_a_track_page_shows_tag_bars_similar_tracks_and_the_tag_curve(open_page, server):
    page = open_page("#track/2")
    expect(page.locator("#track-title")).to_have_text(track_name(server, 2))
    expect(page.locator(".vocabulary[data-vocabulary='mtt'] .bars li")).to_have_count(10)
    similar = page.locator(".similar .results li a.name")
    expect(similar.first).to_be_visible()
    assert "#track/2" not in [similar.nth(i).get_attribute("href") for i in range(similar.count())]
    page.get_by_role("button", name="Show tags over time").click()
    expect(page.locator(".curve svg polyline")).to_have_count(5, timeout=30_000)
    similar.first.click()
    expect(page).not_to_have_url(re.compile(r"#track/2$"))
    expect(page.locator("#track-title")).not_to_have_text(track_name(server, 2))
    assert page.errors == []


def test_the_library_list_filters_and_its_map_links_to_tracks(open_page, server):
    page = open_page("#library")
    rows = page.locator("#track-table tbody tr")
    expect(rows).to_have_count(6)
    expect(page.locator("#stats")).to_contain_text("tracks6")
    wanted = track_name(server, 4)
    page.get_by_label("Filter tracks by name or file").fill(wanted.split("-")[2])  # e.g. "cmajor"
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(wanted)
    expect(page.locator("#library-status")).to_contain_text("1 track match")
    dot = page.locator("#map a[href='#track/5']")
    expect(dot.locator("title")).to_have_text(track_name(server, 5))
    dot.click()
    expect(page.locator("#track-title")).to_have_text(track_name(server, 5))
    assert page.errors == []


def test_monitoring_a_recording_draws_its_timeline(open_page, server, files):
    page = open_page("#monitor")
    page.set_input_files("#monitor-file", str(files / "recording.wav"))
    page.get_by_role("button", name="Find the tracks").click()
    expect(page.locator("#monitor-status")).to_have_text("Done: 2 tracks of the library found.", timeout=30_000)
    found = page.locator(".timeline a.segment")
    hrefs = {found.nth(i).get_attribute("href") for i in range(found.count())}
    assert {"#track/2", "#track/5"} <= hrefs
    table = page.locator("table.segments")
    expect(table).to_contain_text(track_name(server, 2))
    expect(table).to_contain_text(track_name(server, 5))
    assert page.errors == []
