// The tuneseek web page: one page, five views chosen by the address's hash
// (#listen, #search, #library, #track/ID, #monitor), over the JSON API of the same server.
// Plain JavaScript modules, nothing fetched from elsewhere. Text from the server (track names,
// tags, errors) is only ever set as text, never as HTML.

import { encodeWav, micUnavailable, record } from "/static/recorder.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// Okabe-Ito: colours told apart with every common colour-vision deficiency
const PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7a5195", "#8c6d31"];
const VOCABULARIES = { mtt: "MagnaTagATune tags", msd: "Million Song Dataset tags" };
const PAGE_SIZE = 20;

// -- small helpers -----------------------------------------------------------------------

/** An element with attributes (on* keys are listeners) and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAll(node, attrs, children);
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAll(node, attrs, children);
  return node;
}

function setAll(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** 83.2 -> "1:23"; 3725 -> "1:02:05". */
function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}

function fixed(x, digits = 2) {
  return Number(x).toFixed(digits);
}

function percent(x) {
  return `${Math.round(Number(x) * 100)}%`;
}

function bytes(n) {
  if (n >= 1e9) return `${fixed(n / 1e9, 1)} GB`;
  if (n >= 1e6) return `${fixed(n / 1e6, 1)} MB`;
  if (n >= 1e3) return `${fixed(n / 1e3, 0)} kB`;
  return `${n} B`;
}

function trackHref(id) {
  return `#track/${id}`;
}

function colour(trackId) {
  return PALETTE[(Number(trackId) - 1 + PALETTE.length) % PALETTE.length];
}

/** Show a message in a view's status line; `kind` "error" styles it as one. */
function say(id, message, kind = "") {
  const node = $(id);
  node.textContent = message || "";
  node.className = `status ${kind}`;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The JSON of a request to this server; its {"error": ...} message thrown as an ApiError. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, "The server did not answer: is tuneseek serve still running?");
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.error === "string" ? body.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

function upload(path, file, name) {
  const form = new FormData();
  form.append("file", file, name || file.name || "clip.wav");
  return api(path, { method: "POST", body: form });
}

// -- the shared player -------------------------------------------------------------------

const player = $("player-audio");

/** A button that plays a track in the player at the bottom of the page (from `at` seconds). */
function playButton(result, at = null) {
  const button = el("button", {
    type: "button",
    class: "play",
    "data-src": `/tracks/${result.track_id}/audio`,
    "aria-label": `Play ${result.track}`,
  });
  button.textContent = "\u25B6 Play";
  button.addEventListener("click", () => {
    const src = button.dataset.src;
    const same = player.getAttribute("src") === src;
    if (same && !player.paused && at === null) {
      player.pause();
      return;
    }
    if (!same) {
      player.src = src;
      $("now-playing").textContent = result.track;
    }
    $("player").hidden = false;
    const start = () => {
      if (at !== null) player.currentTime = Math.max(0, at);
      player.play().catch((e) => {
        $("now-playing").textContent = `${result.track}: the browser would not play it (${e.message})`;
      });
    };
    if (at !== null && player.readyState < 1) player.addEventListener("loadedmetadata", start, { once: true });
    else start();
  });
  return button;
}

function syncPlayButtons() {
  const src = player.getAttribute("src");
  for (const b of document.querySelectorAll("button.play")) {
    const playing = b.dataset.src === src && !player.paused;
    b.textContent = playing ? "\u275A\u275A Pause" : "\u25B6 Play";
    b.setAttribute("aria-label", `${playing ? "Pause" : "Play"} ${b.getAttribute("aria-label").replace(/^\S+ /, "")}`);
  }
}
player.addEventListener("play", syncPlayButtons);
player.addEventListener("pause", syncPlayButtons);
player.addEventListener("ended", syncPlayButtons);

/** A ranked list of results ({track_id, track, score, time?}), each linked to its page and playable. */
function resultList(results, { scoreName = "score" } = {}) {
  if (!results.length) return el("p", { class: "empty" }, "No tracks.");
  return el(
    "ol",
    { class: "results" },
    results.map((r) =>
      el(
        "li",
        {},
        el("a", { href: trackHref(r.track_id), class: "name" }, r.track),
        el(
          "span",
          { class: "meta" },
          `${scoreName} ${fixed(r.score, 3)}`,
          r.time !== undefined && r.time !== null ? ` \u00B7 best part at ${clock(r.time)}` : "",
        ),
        playButton(r, r.time ?? null),
      ),
    ),
  );
}

// -- header: the library and whether the server is ready ------------------------------------

let stats = null;

async function loadStats() {
  try {
    stats = await api("/stats");
    const name = stats.path.split(/[\\/]/).filter(Boolean).pop() || stats.path;
    $("library-line").textContent = `${name} \u00B7 ${stats.tracks} track${stats.tracks === 1 ? "" : "s"}`;
    $("library-line").title = stats.path;
  } catch (e) {
    $("library-line").textContent = `library: ${e.message}`;
  }
  return stats;
}

async function watchReady() {
  const badge = $("ready");
  try {
    const ready = await api("/ready");
    const warnings = ready.warnings || [];
    badge.textContent = warnings.length ? "ready, with warnings" : "ready";
    badge.title = warnings.join("\n");
    badge.className = `badge ${warnings.length ? "warn" : "ok"}`;
  } catch (e) {
    if (e.status === 503) {
      badge.textContent = "warming up\u2026";
      badge.title = e.message;
      badge.className = "badge warn";
    } else {
      badge.textContent = "server unavailable";
      badge.title = e.message;
      badge.className = "badge bad";
    }
    setTimeout(watchReady, 1000);
  }
}

// -- Listen --------------------------------------------------------------------------------

let lastClip = null; // {file, name}: what the last identification sent, for "Similar to this clip"
let busy = false;

function setupListen() {
  const why = micUnavailable();
  const button = $("listen-button");
  if (why) {
    $("mic-note").textContent = why;
    $("mic-note").hidden = false;
    button.disabled = true;
  }
  // ?seconds=N in the address overrides the choice (the browser tests record 2 to 4 s)
  const asked = Number(new URLSearchParams(location.search).get("seconds"));
  if (asked > 0 && asked <= 30) {
    const select = $("listen-seconds");
    if (![...select.options].some((o) => Number(o.value) === asked)) {
      select.append(el("option", { value: asked }, `${asked} seconds`));
    }
    select.value = String(asked);
  }
  button.addEventListener("click", listen);
  $("clip-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) identify(file, file.name);
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) identify(file, file.name);
  });
  // a file dropped anywhere else must not replace the page
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

async function listen() {
  if (busy) return;
  busy = true;
  const button = $("listen-button");
  const seconds = Number($("listen-seconds").value);
  const rest = $("level").firstElementChild;
  button.disabled = true;
  button.classList.add("busy");
  button.textContent = "Listening\u2026";
  $("meter-box").hidden = false;
  $("listen-result").replaceChildren();
  $("clip-similar").replaceChildren();
  say("listen-status", `Listening for ${seconds} seconds\u2026`);
  $("countdown").textContent = `${seconds} s left`;
  try {
    const { samples, sampleRate } = await record(seconds, {
      onLevel: (level) => {
        rest.style.width = `${100 - Math.round(level * 100)}%`;
        $("level").setAttribute("aria-valuenow", String(Math.round(level * 100)));
      },
      onProgress: (done) => {
        $("countdown").textContent = `${Math.max(0, Math.ceil(seconds - done))} s left`;
      },
    });
    $("meter-box").hidden = true;
    busy = false;
    await identify(encodeWav(samples, sampleRate), "microphone.wav");
  } catch (e) {
    say("listen-status", e.message, "error");
  } finally {
    busy = false;
    $("meter-box").hidden = true;
    button.disabled = false;
    button.classList.remove("busy");
    button.textContent = "Listen";
  }
}

async function identify(file, name) {
  if (busy) {
    say("listen-status", "Wait for the recording or the last question to finish, then try again.", "error");
    return;
  }
  busy = true;
  lastClip = { file, name };
  $("listen-result").replaceChildren();
  $("clip-similar").replaceChildren();
  say("listen-status", "Looking for it in the library\u2026");
  try {
    const { matches } = await upload("/identify?top=3", file, name);
    if (!matches.length) {
      say("listen-status", "No match.");
      $("listen-result").replaceChildren(
        el(
          "div",
          { class: "nomatch" },
          el("h2", {}, "No match"),
          el(
            "p",
            {},
            "This clip is not like any track of the library. Try a longer or louder recording, closer to the music.",
          ),
          similarClipButton(),
        ),
      );
      return;
    }
    const [best, ...others] = matches;
    say("listen-status", `Found: ${best.track}, at ${clock(best.offset)}.`);
    $("listen-result").replaceChildren(matchCard(best, others));
  } catch (e) {
    say("listen-status", e.message, "error");
  } finally {
    busy = false;
    $("clip-file").value = "";
  }
}

function matchCard(best, others) {
  const audio = el("audio", {
    controls: true,
    preload: "metadata",
    src: `/tracks/${best.track_id}/audio`,
    "data-offset": best.offset,
    "aria-label": `${best.track}, from ${clock(best.offset)}`,
  });
  // play from where the clip was: seek as soon as the length is known
  audio.addEventListener("loadedmetadata", () => {
    audio.currentTime = Math.min(Math.max(0, best.offset), audio.duration || Infinity);
  });
  return el(
    "article",
    { class: "match card", "data-track-id": best.track_id },
    el("h2", { class: "match-title" }, el("a", { href: trackHref(best.track_id) }, best.track)),
    el(
      "dl",
      { class: "facts inline" },
      el("dt", {}, "at"),
      el("dd", { class: "offset" }, clock(best.offset)),
      el("dt", {}, "confidence"),
      el("dd", { class: "confidence" }, percent(best.confidence)),
      best.speed !== 1 || best.tempo !== 1 ? [el("dt", {}, "speed"), el("dd", {}, `\u00D7${fixed(best.speed * best.tempo)}`)] : [],
    ),
    audio,
    el(
      "p",
      { class: "actions" },
      el("a", { href: trackHref(best.track_id), class: "button-link" }, "Track page"),
      similarClipButton(),
    ),
    others.length
      ? el(
          "details",
          { class: "others" },
          el("summary", {}, `${others.length} other candidate${others.length === 1 ? "" : "s"}`),
          el(
            "ul",
            {},
            others.map((m) =>
              el(
                "li",
                {},
                el("a", { href: trackHref(m.track_id) }, m.track),
                ` at ${clock(m.offset)}, confidence ${percent(m.confidence)}`,
              ),
            ),
          ),
        )
      : null,
  );
}

function similarClipButton() {
  return el("button", { type: "button", onclick: similarToClip }, "Similar to this clip");
}

async function similarToClip() {
  if (!lastClip) return;
  const box = $("clip-similar");
  box.replaceChildren(el("p", { class: "status", role: "status" }, "Looking for tracks that sound like the clip\u2026"));
  try {
    const { results } = await upload("/similar?k=10", lastClip.file, lastClip.name);
    box.replaceChildren(el("h2", {}, "Sounds like the clip"), resultList(results, { scoreName: "similarity" }));
  } catch (e) {
    box.replaceChildren(el("p", { class: "status error", role: "status" }, e.message));
  }
}

// -- Search ----------------------------------------------------------------------------------

function setupSearch() {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) return;
    const target = `#search?q=${encodeURIComponent(q)}`;
    if (location.hash === target) search(q);
    else location.hash = target;
  });
}

async function search(q) {
  $("search-q").value = q;
  const out = $("search-results");
  out.replaceChildren();
  say("search-status", "Searching\u2026");
  try {
    const found = await api(`/search?q=${encodeURIComponent(q)}&k=10`);
    say("search-status", `${found.results.length} track${found.results.length === 1 ? "" : "s"} for \u201C${found.query}\u201D.`);
    out.replaceChildren(
      el("p", { class: "model" }, `Ranked by ${found.model}.`),
      found.explanation ? el("p", { class: "explanation" }, found.explanation) : null,
      (found.notices || []).map((n) => el("p", { class: "note" }, n)),
      resultList(found.results),
    );
  } catch (e) {
    say("search-status", e.message, "error");
  }
}

// -- Library ---------------------------------------------------------------------------------

const listing = { q: "", offset: 0, total: 0, loaded: false };
let filterTimer = null;

function setupLibrary() {
  $("filter-form").addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(filterTimer);
    listing.q = $("filter").value.trim();
    listing.offset = 0;
    loadTracks();
  });
  $("filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      listing.q = $("filter").value.trim();
      listing.offset = 0;
      loadTracks();
    }, 250);
  });
  $("page-prev").addEventListener("click", () => {
    listing.offset = Math.max(0, listing.offset - PAGE_SIZE);
    loadTracks();
  });
  $("page-next").addEventListener("click", () => {
    listing.offset += PAGE_SIZE;
    loadTracks();
  });
  $("map-space").addEventListener("change", loadMap);
}

async function enterLibrary() {
  const s = await loadStats();
  if (s) showStats(s);
  loadTracks();
  loadMap();
}

function showStats(s) {
  const spaces = Object.entries(s.spaces || {});
  const rows = [
    ["tracks", s.tracks],
    ["audio", `${fixed(s.audio_hours, 2)} h`],
    ["landmarks", Number(s.landmarks).toLocaleString("en")],
    ["tagged", s.tagged],
    ["embedded", s.embedded],
    ["index", bytes(s.index_bytes + s.catalog_bytes)],
  ];
  if (spaces.length) rows.push(["spaces", spaces.map(([k, v]) => `${k} (${v})`).join(", ")]);
  $("stats").replaceChildren(...rows.flatMap(([k, v]) => [el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))]));
  const select = $("map-space");
  const names = spaces.length ? spaces.map(([k]) => k) : ["musicnn"];
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    const was = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(was)) select.value = was;
  }
}

let tracksRequest = 0;

async function loadTracks() {
  const mine = ++tracksRequest;
  const params = new URLSearchParams({ offset: listing.offset, limit: PAGE_SIZE });
  if (listing.q) params.set("q", listing.q);
  say("library-status", "Loading\u2026");
  try {
    const { total, tracks } = await api(`/tracks?${params}`);
    if (mine !== tracksRequest) return; // a newer filter has been asked for
    listing.total = total;
    const body = $("track-table").tBodies[0];
    body.replaceChildren(
      ...tracks.map((t) =>
        el(
          "tr",
          {},
          el("td", { class: "num" }, String(t.track_id)),
          el("td", {}, el("a", { href: trackHref(t.track_id) }, t.track)),
          el("td", { class: "num" }, clock(t.duration)),
          el("td", {}, playButton(t)),
        ),
      ),
    );
    const first = total ? listing.offset + 1 : 0;
    const last = listing.offset + tracks.length;
    $("page-info").textContent = `${first}\u2013${last} of ${total}`;
    $("page-prev").disabled = listing.offset === 0;
    $("page-next").disabled = last >= total;
    say(
      "library-status",
      listing.q
        ? `${total} track${total === 1 ? "" : "s"} match \u201C${listing.q}\u201D.`
        : `${total} track${total === 1 ? "" : "s"}.`,
    );
    syncPlayButtons();
  } catch (e) {
    if (mine === tracksRequest) say("library-status", e.message, "error");
  }
}

async function loadMap() {
  const space = $("map-space").value || "musicnn";
  const box = $("map");
  say("map-status", "Drawing the map\u2026");
  try {
    const found = await api(`/map?space=${encodeURIComponent(space)}`);
    box.replaceChildren(drawMap(found));
    say("map-status", `${found.points.length} track${found.points.length === 1 ? "" : "s"} in the ${found.space} space${found.method ? ` (${found.method})` : ""}.`);
  } catch (e) {
    box.replaceChildren();
    say("map-status", e.message, "error");
  }
}

function drawMap({ points, space }) {
  const W = 640;
  const H = 400;
  const pad = 16;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const sy = (y) => H - pad - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const caption = $("map-caption");
  caption.textContent = "";
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "map", role: "group", "aria-label": `Map of ${points.length} tracks (${space})` },
    svg("rect", { x: 0.5, y: 0.5, width: W - 1, height: H - 1, class: "frame" }),
  );
  for (const p of points) {
    const show = () => {
      caption.textContent = p.track;
    };
    chart.append(
      svg(
        "a",
        { href: trackHref(p.track_id), "aria-label": p.track, class: "dot", onfocus: show, onmouseenter: show },
        svg("circle", { cx: fixed(sx(p.x), 1), cy: fixed(sy(p.y), 1), r: 7, fill: colour(p.track_id) }, svg("title", {}, p.track)),
      ),
    );
  }
  return chart;
}

// -- Track page ------------------------------------------------------------------------------

async function enterTrack(id) {
  const body = $("track-body");
  body.replaceChildren();
  $("track-title").textContent = "Track";
  say("track-status", "Loading\u2026");
  let t;
  try {
    t = await api(`/tracks/${encodeURIComponent(id)}`);
  } catch (e) {
    say("track-status", e.message, "error");
    return;
  }
  if (currentRoute().arg !== id) return; // the person has gone elsewhere meanwhile
  say("track-status", "");
  $("track-title").textContent = t.track;
  document.title = `${t.track} \u2013 tuneseek`;
  const known = (rows) => rows.filter(([, v]) => v !== null && v !== undefined && v !== "");
  const factList = (rows, cls) =>
    el("dl", { class: cls }, rows.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  const facts = known([
    ["artist", t.artist],
    ["title", t.title],
    ["length", clock(t.duration)],
  ]);
  const details = known([
    ["file", t.path],
    ["audio", `${t.sample_rate} Hz, ${t.channels === 1 ? "mono" : `${t.channels} channels`}, ${bytes(t.size)}`],
    ["landmarks", Number(t.landmarks).toLocaleString("en")],
    ["added", new Date(t.added_at * 1000).toLocaleString()],
    [
      "extractors",
      el(
        "ul",
        {},
        Object.entries(t.extractors || {}).map(([k, v]) => el("li", {}, `${k}: ${v}`)),
      ),
    ],
  ]);
  const tags = el("section", { class: "tags", "aria-labelledby": "tags-title" }, el("h2", { id: "tags-title" }, "What it sounds like"));
  const curve = el(
    "section",
    { class: "curve", "aria-labelledby": "curve-title" },
    el("h2", { id: "curve-title" }, "Tags over time"),
    el("button", { type: "button", id: "curve-button", onclick: () => loadCurve(id, curve) }, "Show tags over time"),
  );
  const similar = el("section", { class: "similar", "aria-labelledby": "similar-title" }, el("h2", { id: "similar-title" }, "Sounds like"));
  body.replaceChildren(
    el("audio", { controls: true, preload: "metadata", src: `/tracks/${t.track_id}/audio`, "aria-label": `Play ${t.track}` }),
    factList(facts, "facts"),
    tags,
    curve,
    similar,
    el("details", { class: "file-details" }, el("summary", {}, "The file and what the library holds"), factList(details, "facts")),
  );
  loadTags(id, tags);
  loadSimilar(id, similar);
}

async function loadTags(id, section) {
  try {
    const vocabularies = await api(`/tracks/${encodeURIComponent(id)}/tags`);
    const names = Object.keys(vocabularies).sort((a, b) => (a === "mtt" ? -1 : b === "mtt" ? 1 : a.localeCompare(b)));
    if (!names.length) {
      section.append(el("p", { class: "empty" }, "No tags yet: index this track with the models available."));
      return;
    }
    for (const vocab of names) {
      const top = Object.entries(vocabularies[vocab].tags)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10);
      section.append(
        el(
          "div",
          { class: "vocabulary", "data-vocabulary": vocab },
          el("h3", {}, `${VOCABULARIES[vocab] || vocab} (${vocab})`),
          el(
            "ul",
            { class: "bars" },
            top.map(([label, p]) =>
              el(
                "li",
                {},
                el("span", { class: "label" }, label),
                el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: `width: ${fixed(Math.max(0, Math.min(1, p)) * 100, 1)}%` })),
                el("span", { class: "value" }, fixed(p, 2)),
              ),
            ),
          ),
        ),
      );
    }
  } catch (e) {
    section.append(el("p", { class: "status error" }, e.message));
  }
}

async function loadSimilar(id, section) {
  try {
    const { results } = await api(`/tracks/${encodeURIComponent(id)}/similar?k=10`);
    section.append(resultList(results, { scoreName: "similarity" }));
  } catch (e) {
    section.append(el("p", { class: "status error" }, e.message));
  }
}

async function loadCurve(id, section) {
  const button = section.querySelector("button");
  button.disabled = true;
  for (const old of section.querySelectorAll(".chart, .legend, .status")) old.remove();
  const note = el("p", { class: "status", role: "status" }, "Listening to the whole track\u2026");
  section.append(note);
  try {
    const found = await api(`/tracks/${encodeURIComponent(id)}/tags/curve?model=mtt`);
    note.remove();
    section.append(...drawCurve(found));
    button.hidden = true;
  } catch (e) {
    note.textContent = e.message;
    note.className = "status error";
    button.disabled = false;
  }
}

function drawCurve({ times, curve, tags }) {
  if (!times || !times.length) return [el("p", { class: "empty" }, "The track is too short for a curve.")];
  const top = Object.keys(curve)
    .map((label) => [label, tags && label in tags ? tags[label] : curve[label].reduce((a, b) => a + b, 0) / curve[label].length])
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([label]) => label);
  const W = 640;
  const H = 220;
  const left = 36;
  const bottom = 24;
  const end = times[times.length - 1] || 1;
  const X = (t) => left + (t / end) * (W - left - 8);
  const Y = (p) => 8 + (1 - p) * (H - bottom - 8);
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `Tags over time: ${top.join(", ")}` },
  );
  for (const p of [0, 0.5, 1]) {
    chart.append(
      svg("line", { x1: left, x2: W - 8, y1: Y(p), y2: Y(p), class: "grid" }),
      svg("text", { x: left - 6, y: Y(p) + 4, "text-anchor": "end", class: "axis" }, String(p)),
    );
  }
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("text", { x: X(f * end), y: H - 6, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle", class: "axis" }, clock(f * end)));
  }
  const dashes = ["", "6 3", "2 3", "8 3 2 3", "1 2"];
  top.forEach((label, i) => {
    const points = times.map((t, j) => `${fixed(X(t), 1)},${fixed(Y(curve[label][j]), 1)}`).join(" ");
    chart.append(
      svg(
        "polyline",
        { points, class: "line", stroke: PALETTE[i], "stroke-dasharray": dashes[i] || null, "data-tag": label },
        svg("title", {}, label),
      ),
    );
  });
  const legend = el(
    "ul",
    { class: "legend" },
    top.map((label, i) => el("li", {}, el("span", { class: "swatch", style: `background: ${PALETTE[i]}`, "aria-hidden": "true" }), label)),
  );
  return [chart, legend];
}

// -- Monitor ---------------------------------------------------------------------------------

let monitorJob = null;

function setupMonitor() {
  $("monitor-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("monitor-file").files[0];
    if (!file) return;
    const button = e.target.querySelector("button");
    button.disabled = true;
    $("monitor-result").replaceChildren();
    $("monitor-progress").hidden = false;
    $("monitor-bar").removeAttribute("value");
    $("monitor-progress-text").textContent = "uploading\u2026";
    say("monitor-status", `Sending ${file.name}\u2026`);
    try {
      const job = await upload("/monitor", file, file.name);
      monitorJob = job.job;
      say("monitor-status", "Listening through the recording\u2026");
      const done = await follow(job);
      if (done.state === "done") {
        const segments = done.result.segments || [];
        const tracks = new Set(segments.filter((s) => s.track_id !== null && s.track_id !== undefined).map((s) => s.track_id));
        say("monitor-status", `Done: ${tracks.size} track${tracks.size === 1 ? "" : "s"} of the library found.`);
        $("monitor-result").replaceChildren(...timeline(segments, done.total));
      } else {
        say("monitor-status", done.error || "The job failed.", "error");
      }
    } catch (err) {
      say("monitor-status", err.message, "error");
    } finally {
      $("monitor-progress").hidden = true;
      button.disabled = false;
    }
  });
}

/** Poll a job every half second, showing its progress, until it is done or has failed. */
async function follow(job) {
  for (;;) {
    const bar = $("monitor-bar");
    if (job.total) {
      bar.max = job.total;
      bar.value = Math.min(job.done || 0, job.total);
      $("monitor-progress-text").textContent = `${clock(job.done || 0)} of ${clock(job.total)} listened to (${percent((job.done || 0) / job.total)})`;
    } else {
      bar.removeAttribute("value");
      $("monitor-progress-text").textContent = job.state === "queued" ? "waiting to start\u2026" : "starting\u2026";
    }
    if (job.state === "done" || job.state === "failed") return job;
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (monitorJob !== job.job) throw new Error("A newer recording replaced this one.");
    job = await api(`/jobs/${job.job}`);
  }
}

function timeline(segments, total) {
  if (!segments.length) return [el("p", { class: "empty" }, "Nothing in this recording.")];
  const end = Math.max(total || 0, ...segments.map((s) => s.end)) || 1;
  const found = segments.filter((s) => s.track_id !== null && s.track_id !== undefined);
  const bar = el("div", { class: "timeline", role: "img", "aria-label": `Timeline: ${found.length} track${found.length === 1 ? "" : "s"} found in ${clock(end)}` });
  for (const s of segments) {
    const style = `left: ${fixed((s.start / end) * 100, 3)}%; width: ${fixed(Math.max(0.3, ((s.end - s.start) / end) * 100), 3)}%;`;
    const label = s.track_id === null || s.track_id === undefined ? `${clock(s.start)}\u2013${clock(s.end)}: not in the library` : `${clock(s.start)}\u2013${clock(s.end)}: ${s.track}`;
    bar.append(
      s.track_id === null || s.track_id === undefined
        ? el("span", { class: "segment unknown", style, title: label })
        : el("a", { class: "segment", href: trackHref(s.track_id), style: `${style} background: ${colour(s.track_id)};`, title: label, "aria-label": label, tabindex: "-1" }),
    );
  }
  const axis = el(
    "div",
    { class: "axis-row", "aria-hidden": "true" },
    [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { style: `left: ${f * 100}%` }, clock(f * end))),
  );
  const table = el(
    "table",
    { class: "segments" },
    el("caption", {}, `${found.length} stretch${found.length === 1 ? "" : "es"} of library tracks in ${clock(end)}`),
    el(
      "thead",
      {},
      el("tr", {}, ["From", "To", "Track", "In the track", "Confidence"].map((h) => el("th", { scope: "col" }, h))),
    ),
    el(
      "tbody",
      {},
      segments.map((s) =>
        s.track_id === null || s.track_id === undefined
          ? el("tr", { class: "unknown" }, el("td", {}, clock(s.start)), el("td", {}, clock(s.end)), el("td", { colspan: 3 }, "not in the library"))
          : el(
              "tr",
              {},
              el("td", {}, clock(s.start)),
              el("td", {}, clock(s.end)),
              el("td", {}, el("span", { class: "swatch", style: `background: ${colour(s.track_id)}`, "aria-hidden": "true" }), el("a", { href: trackHref(s.track_id) }, s.track)),
              el("td", {}, s.track_start !== undefined && s.track_start !== null ? `${clock(s.track_start)}\u2013${clock(s.track_end)}` : ""),
              el("td", {}, s.confidence !== undefined ? percent(s.confidence) : ""),
            ),
      ),
    ),
  );
  return [bar, axis, el("div", { class: "table-wrap" }, table)];
}

// -- routing ---------------------------------------------------------------------------------

const TITLES = { listen: "Listen", search: "Search", library: "Library", track: "Track", monitor: "Monitor" };

function currentRoute() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split(/\?(.*)/s);
  const [name, arg = null] = decodeURIComponent(path).split("/");
  return { name: TITLES[name] ? name : "listen", arg, params: new URLSearchParams(query) };
}

let firstRoute = true;

function route() {
  const { name, arg, params } = currentRoute();
  for (const section of document.querySelectorAll("section.view")) section.hidden = section.dataset.view !== name;
  for (const a of document.querySelectorAll("nav a[data-view]")) {
    if (a.dataset.view === name || (name === "track" && a.dataset.view === "library")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${TITLES[name]} \u2013 tuneseek`;
  if (name === "search" && params.get("q")) search(params.get("q"));
  if (name === "library") enterLibrary();
  if (name === "track") enterTrack(arg);
  // after a move within the page, take the reader to the new view's heading
  if (!firstRoute) $(`${name}-title`).focus({ preventScroll: false });
  firstRoute = false;
}

setupListen();
setupSearch();
setupLibrary();
setupMonitor();
window.addEventListener("hashchange", route);
route();
loadStats();
watchReady();
