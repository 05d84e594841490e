// Recording from the microphone in the browser: a few seconds of mono samples, a live level
// while they come in, and the 16-bit WAV that is sent to the server. No library, no build step.

/** Why the microphone cannot be used on this page, or null when it can. */
export function micUnavailable() {
  if (!window.isSecureContext) {
    return (
      "The microphone needs a secure page: open this page at https:// or on localhost " +
      "(http://localhost or http://127.0.0.1). You can still choose or drop a recording below."
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "This browser does not let pages use the microphone. You can still choose or drop a recording below.";
  }
  if (!window.AudioContext && !window.webkitAudioContext) {
    return "This browser cannot record audio (no Web Audio). You can still choose or drop a recording below.";
  }
  return null;
}

/** A person-readable reason for a failed getUserMedia. */
function micError(e) {
  switch (e && e.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "The microphone was not allowed: let this page use it (the icon in the address bar) and try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found.";
    case "NotReadableError":
      return "The microphone is busy or could not be opened (is another program using it?).";
    default:
      return `The microphone could not be opened: ${e && e.message ? e.message : e}`;
  }
}

/**
 * Record `seconds` of mono audio from the microphone.
 *
 * `onLevel(level)` gets the input's loudness, 0..1 (RMS on a 60 dB scale), about 20 times a second;
 * `onProgress(secondsDone)` how much has been recorded. Resolves to {samples: Float32Array, sampleRate}.
 */
export async function record(seconds, { onLevel = () => {}, onProgress = () => {} } = {}) {
  let stream;
  try {
    // the raw signal: echo cancelling, noise suppression and gain control would change the music
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
  } catch (e) {
    throw new Error(micError(e));
  }
  const Context = window.AudioContext || window.webkitAudioContext;
  const ctx = new Context();
  const chunks = [];
  let got = 0;
  let meter = null;
  let watchdog = null;
  try {
    if (ctx.state === "suspended") await ctx.resume();
    const need = Math.round(seconds * ctx.sampleRate);
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    source.connect(analyser);
    const silent = ctx.createGain(); // keeps the recording node pulled by the graph, and plays nothing
    silent.gain.value = 0;
    silent.connect(ctx.destination);

    const frame = new Float32Array(analyser.fftSize);
    meter = setInterval(() => {
      analyser.getFloatTimeDomainData(frame);
      let sum = 0;
      for (let i = 0; i < frame.length; i++) sum += frame[i] * frame[i];
      const rms = Math.sqrt(sum / frame.length);
      const db = 20 * Math.log10(rms + 1e-9);
      onLevel(Math.min(1, Math.max(0, (db + 60) / 60)));
    }, 50);

    const samples = await new Promise((resolve, reject) => {
      let node;
      const finish = () => {
        const out = new Float32Array(Math.min(got, need));
        let at = 0;
        for (const c of chunks) {
          if (at >= out.length) break;
          out.set(c.subarray(0, out.length - at), at);
          at += c.length;
        }
        if (node) node.disconnect();
        resolve(out);
      };
      const take = (chunk) => {
        if (got >= need) return;
        chunks.push(chunk);
        got += chunk.length;
        onProgress(Math.min(got, need) / ctx.sampleRate);
        if (got >= need) finish();
      };
      // if the audio clock stalls, stop with what came in rather than wait forever
      watchdog = setTimeout(() => {
        if (got === 0) reject(new Error("The microphone gave no sound at all: is it muted or unplugged?"));
        else finish();
      }, (seconds + 5) * 1000);
      const viaWorklet = async () => {
        await ctx.audioWorklet.addModule("/static/recorder-worklet.js");
        node = new AudioWorkletNode(ctx, "tuneseek-recorder", {
          numberOfInputs: 1,
          numberOfOutputs: 1,
          channelCount: 1,
          channelCountMode: "explicit",
          channelInterpretation: "speakers",
        });
        node.port.onmessage = (e) => take(e.data);
      };
      const viaScriptProcessor = () => {
        node = ctx.createScriptProcessor(4096, 1, 1);
        node.onaudioprocess = (e) => take(new Float32Array(e.inputBuffer.getChannelData(0)));
      };
      (ctx.audioWorklet ? viaWorklet().catch(viaScriptProcessor) : Promise.resolve(viaScriptProcessor()))
        .then(() => {
          source.connect(node);
          node.connect(silent);
        })
        .catch(reject);
    });
    return { samples, sampleRate: ctx.sampleRate };
  } finally {
    clearInterval(meter);
    clearTimeout(watchdog);
    onLevel(0);
    for (const track of stream.getTracks()) track.stop();
    ctx.close().catch(() => {});
  }
}

/** The samples (-1..1) as a 16-bit mono PCM WAV file. */
export function encodeWav(samples, sampleRate) {
  const bytes = 44 + samples.length * 2;
  const view = new DataView(new ArrayBuffer(bytes));
  const text = (at, s) => {
    for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, bytes - 8, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // size of the fmt chunk
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0, at = 44; i < samples.length; i++, at += 2) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(at, x < 0 ? x * 0x8000 : x * 0x7fff, true);
  }
  return new Blob([view], { type: "audio/wav" });
}
