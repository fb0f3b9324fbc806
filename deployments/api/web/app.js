// The playground: a form over POST /v1/audio/speech (pcm in SSE events, played as it arrives),
// the voice list (GET /v1/audio/voices) and new voices from a clip or a recording (POST /v1/voices).
// Everything it loads comes from this server; deployments/api/web.py serves it.
import { PcmPlayer } from "./player.js";

const $ = (id) => document.getElementById(id);
const API = new URL("../v1/", document.baseURI); // the API beside /web/, under any route prefix
const SLIDERS = {
  speaking_rate: { label: "Speaking rate (phonemes/s)", step: 0.5 },
  pitch_std: { label: "Pitch variation (pitch_std)", step: 1 },
  cfg_scale: { label: "Guidance (cfg_scale)", step: 0.1 },
};
const MAX_SEED = 2n ** 63n - 1n;

let config = null; // GET /web/config.json
let player = null;
let controller = null; // aborts the running request
let lastRun = null; // {body, seed}: what the last successful run asked for, and the seed the server used
let clip = null; // the File a new voice is made from
let recorder = null;

// ------------------------------------------------------------------ API calls

// A call to the API (`path` relative to /v1/, or a URL), with the key box's key when it holds one.
async function api(path, init = {}) {
  const key = $("api-key").value.trim();
  const headers = { ...init.headers, ...(key ? { Authorization: `Bearer ${key}` } : {}) };
  const response = await fetch(new URL(path, API), { ...init, headers });
  if (!response.ok) throw await apiError(response);
  return response;
}

// The API's own message (OpenAI's {"error": {"message", ...}}), else the HTTP status; `status` kept.
async function apiError(response) {
  let message = `HTTP ${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return Object.assign(new Error(message), { status: response.status });
}

const KEY_HINT = "This server needs an API key: type yours in the API key box at the top of the page.";

// The error's message in box `id` (none: hide it). A 401 adds KEY_HINT and marks the key box.
function showError(id, error) {
  const box = $(id);
  const unauthorised = Boolean(error) && error.status === 401;
  box.hidden = !error;
  box.textContent = error ? error.message : "";
  if (unauthorised) {
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.textContent = KEY_HINT;
    box.append(hint);
  }
  if (error || id === "error") $("api-key").classList.toggle("wanted", unauthorised);
}

// ------------------------------------------------------------------ the form

function buildControls() {
  for (const [name, range] of Object.entries(config.sliders)) {
    $("sliders").append(slider(name, SLIDERS[name].label, range, SLIDERS[name].step, range.default));
  }
  config.emotion.names.forEach((name, i) => {
    const range = { minimum: config.emotion.minimum, maximum: config.emotion.maximum };
    $("emotions").append(slider(`emotion-${name}`, name, range, 0.01, config.emotion.default[i]));
  });
  for (const format of config.formats) $("format").append(new Option(format, format, false, format === "wav"));
}

function slider(id, label, range, step, value) {
  const row = document.createElement("div");
  row.className = "slider";
  row.innerHTML = `<label for="${id}"></label><input type="range" id="${id}"><output></output>`;
  row.querySelector("label").textContent = label;
  const input = row.querySelector("input");
  Object.assign(input, { min: range.minimum, max: range.maximum, step, value, defaultValue: value });
  const show = () => (row.querySelector("output").textContent = input.value);
  input.addEventListener("input", show);
  show();
  return row;
}

function resetControls() {
  for (const input of document.querySelectorAll("#controls-card input[type=range]")) {
    input.value = input.defaultValue;
    input.dispatchEvent(new Event("input"));
  }
}

function countText() {
  if (!config) return;
  const n = [...$("text").value].length; // code points, as the server counts
  $("count").textContent = `${n.toLocaleString()} / ${config.max_text_chars.toLocaleString()} characters`;
  $("count").classList.toggle("over", n > config.max_text_chars);
}

async function loadVoices(select) {
  const { voices } = await (await api("audio/voices")).json();
  const keep = select || $("voice").value;
  const groups = { "Built-in": [], Library: [] };
  for (const voice of voices) groups[voice.id.startsWith("voice_") ? "Library" : "Built-in"].push(voice);
  $("voice").replaceChildren();
  for (const [label, list] of Object.entries(groups)) {
    if (list.length === 0) continue;
    const group = document.createElement("optgroup");
    group.label = label;
    for (const voice of list) group.append(new Option(voice.name, voice.id));
    $("voice").append(group);
  }
  if (keep && voices.some((voice) => voice.id === keep)) $("voice").value = keep;
}

// The model card comes with config.json, which needs no key: the banner shows before one is typed.
function showModelCard() {
  $("model-name").textContent = `${config.model}${config.speech === false ? " (random weights)" : ""}`;
  $("banner").hidden = config.speech !== false;
  $("banner-note").textContent = config.note || "";
}

// The request body as JSON text. The seed is written as digits: it may be up to 2**63 - 1, more
// than a JavaScript number holds exactly.
function speechJson(body, seed) {
  const json = JSON.stringify(body);
  return seed === null ? json : `${json.slice(0, -1)},"seed":${seed}}`;
}

function formSeed() {
  const text = $("seed").value.trim();
  if (text === "") return null;
  if (!/^\d+$/.test(text) || BigInt(text) > MAX_SEED) throw new Error(`seed: a whole number from 0 to ${MAX_SEED}`);
  return BigInt(text).toString();
}

function speechBody() {
  const value = (id) => Number($(id).value);
  const body = {
    model: config.model,
    input: $("text").value,
    voice: $("voice").value,
    response_format: "pcm",
    sample_rate: config.sample_rate,
    emotion: config.emotion.names.map((name) => value(`emotion-${name}`)),
  };
  for (const name of Object.keys(config.sliders)) body[name] = value(name);
  return body;
}

// ------------------------------------------------------------------ a run

// One run. `seed`: the seed for this run only ("Same seed again"); otherwise the seed box's (empty: random).
async function speak(seed) {
  showError("error", null);
  stopRun();
  clearResults(); // nothing of the previous run stays, whatever happens to this one
  let body;
  try {
    body = speechBody();
    if (typeof seed !== "string") seed = formSeed();
  } catch (error) {
    return showError("error", error);
  }
  controller = new AbortController();
  setRunning(true, "waiting for the first audio…");
  const run = { start: performance.now(), bytes: 0, chunks: 0, ttfa: null, end: null };
  try {
    const response = await api("audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: speechJson({ ...body, stream_format: "sse", timestamps: true }, seed),
      signal: controller.signal,
    });
    lastRun = { body, seed: response.headers.get("X-Seed") || seed };
    show("seed-used", lastRun.seed || "–", lastRun.seed);
    $("same-seed").disabled = !lastRun.seed;
    player = new PcmPlayer(Number(response.headers.get("X-Sample-Rate")) || config.sample_rate);
    requestAnimationFrame(drawCursor);
    for await (const event of sseEvents(response.body)) {
      if (event.type === "error") throw new Error(event.error.message); // failed after the audio began
      if (event.type === "speech.audio.done") show("usage", usageText(event.usage), event.usage.output_tokens);
      if (event.type === "speech.audio.segment") addSegment(event.segment);
      if (event.type !== "speech.audio.delta") continue;
      const value = Uint8Array.from(atob(event.audio), (c) => c.charCodeAt(0));
      run.bytes += value.length;
      const added = player.push(value);
      if (added === 0) continue;
      const now = performance.now() - run.start;
      run.chunks++;
      if (run.ttfa === null) {
        run.ttfa = now; // the first buffer is scheduled to play just now
        $("status").textContent = "playing while it streams…";
      }
      addChunk(player.samples - added, player.samples, now);
      showProgress(run);
    }
    run.end = performance.now() - run.start;
    $("bytes").dataset.playedAtEnd = (player.position() || 0).toFixed(3); // seconds heard while it streamed
    showProgress(run);
    $("status").textContent = player.samples ? "done" : "done: the server sent no audio";
    $("download").disabled = player.samples === 0;
  } catch (error) {
    if (error.name === "AbortError") {
      $("status").textContent = "stopped";
    } else if (run.bytes > 0) {
      // it failed part way: the response's status was already sent, the error event says why
      showError("error", new Error(`the audio stream broke off after ${run.bytes} bytes: ${error.message}`));
    } else {
      showError("error", error);
      $("status").textContent = "";
    }
  } finally {
    controller = null;
    setRunning(false);
  }
}

// The JSON data of each server-sent event of a fetch response's body, as it arrives.
async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const data = lines.filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim());
      if (data.length) yield JSON.parse(data.join("\n"));
    }
  }
}

// OpenAI's usage: input tokens are the text's phoneme tokens, output tokens the codec frames.
function usageText(usage) {
  return `${usage.input_tokens} tokens in, ${usage.output_tokens} frames out`;
}

function stopRun() {
  if (controller) controller.abort();
  if (player) player.stop();
  player = null;
}

function setRunning(running, status) {
  $("speak").disabled = running;
  $("stop").disabled = !running;
  if (status !== undefined) $("status").textContent = status;
}

function show(id, text, value) {
  $(id).textContent = text;
  $(id).dataset.value = value === undefined || value === null ? "" : String(value);
}

// Empty every result of the last run: its numbers, timeline, status, download and seed to repeat.
function clearResults() {
  lastRun = null;
  $("same-seed").disabled = true;
  $("status").textContent = "";
  for (const id of ["ttfa", "rtf", "audio-seconds", "bytes", "seed-used", "usage"]) show(id, "–", null);
  for (const key of ["chunks", "end", "playedAtEnd"]) delete $("bytes").dataset[key];
  $("segments").replaceChildren();
  $("chunks").replaceChildren();
  $("timeline-note").textContent = "";
  $("download").disabled = true;
}

// Time to first audio: from sending the request to the first audio bytes (playback starts then).
// Real-time factor: the whole request's wall time over the seconds of audio (below 1: faster than real time).
function showProgress(run) {
  const seconds = player.seconds;
  show("ttfa", `${Math.round(run.ttfa)} ms`, run.ttfa.toFixed(1));
  show("audio-seconds", `${seconds.toFixed(2)} s`, seconds.toFixed(4));
  $("audio-seconds").dataset.samples = player.samples;
  show("bytes", `${run.bytes.toLocaleString()} bytes in ${run.chunks} chunks`, run.bytes);
  $("bytes").dataset.chunks = run.chunks;
  if (run.end === null || seconds === 0) return;
  $("bytes").dataset.end = run.end.toFixed(1);
  const rtf = run.end / 1000 / seconds;
  const pace = rtf < 0.995 ? "faster than" : rtf > 1.005 ? "slower than" : "about";
  show("rtf", `${rtf.toFixed(2)}× (${pace} real time)`, rtf.toFixed(4));
  const sentences = $("segments").children.length;
  const top = sentences ? `${sentences} sentence(s) at the server's timestamps` : "no timestamps from the server";
  $("timeline-note").textContent =
    `Top: ${top}; below: the audio in the ${run.chunks} pieces it arrived in ` +
    `(${player.stalls} playback stalls). Click to replay from there.`;
}

// ------------------------------------------------------------------ the timeline

// Both tracks span the audio received so far: blocks are placed by seconds, as % of its length.

function block(track, from, to, title, label = "") {
  const element = document.createElement("span");
  Object.assign(element.dataset, { from, to });
  element.title = title;
  element.textContent = label;
  element.addEventListener("click", () => player && player.replay(from));
  $(track).append(element);
  layoutTimeline();
  return element;
}

// A piece of audio as it arrived: samples [first, last) of the stream.
function addChunk(first, last, arrivedMs) {
  const [from, to] = [first / player.rate, last / player.rate];
  block("chunks", from, to, `${from.toFixed(2)}–${to.toFixed(2)} s, arrived at ${Math.round(arrivedMs)} ms`);
}

// A sentence: a speech.audio.segment event's {index, text, start_s, end_s, start_sample, end_sample}.
function addSegment(segment) {
  const { index, text, start_s: from, end_s: to } = segment;
  const element = block("segments", from, to, `${index + 1}. ${from.toFixed(2)}–${to.toFixed(2)} s: ${text}`, text);
  Object.assign(element.dataset, { index, text });
}

function layoutTimeline() {
  const total = player ? player.seconds : 0;
  for (const element of document.querySelectorAll("#timeline .track span")) {
    const [from, to] = [Number(element.dataset.from), Number(element.dataset.to)];
    element.style.left = `${(100 * from) / total}%`;
    element.style.width = `${(100 * Math.min(to - from, total - from)) / total}%`;
  }
}

function drawCursor() {
  if (!player) return;
  const at = player.position();
  $("cursor").style.left = at === null || !player.seconds ? "0" : `${(100 * at) / player.seconds}%`;
  requestAnimationFrame(drawCursor);
}

// ------------------------------------------------------------------ download

async function download() {
  const format = $("format").value;
  let blob;
  if (format === "wav" && player) {
    blob = player.wav(); // what was received, built here
  } else {
    // The same request again in the chosen format, with the seed the server used: the same audio.
    const body = { ...lastRun.body, response_format: format, stream: false };
    if (format === "opus") delete body.sample_rate; // opus is always 48 kHz
    $("status").textContent = `encoding ${format} on the server…`;
    try {
      const response = await api("audio/speech", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: speechJson(body, lastRun.seed),
      });
      blob = await response.blob();
      $("status").textContent = "done";
    } catch (error) {
      return showError("error", error);
    }
  }
  const link = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(blob),
    download: `zonos-${lastRun.seed || "audio"}.${format}`,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// ------------------------------------------------------------------ new voices

function setClip(file, label) {
  clip = file;
  $("clip-status").textContent = file ? `${label}: ${(file.size / 1024).toFixed(1)} KB` : "";
  $("clip-status").dataset.bytes = file ? String(file.size) : "";
  $("clip-preview").hidden = !file;
  if (file) $("clip-preview").src = URL.createObjectURL(file);
}

async function toggleRecording() {
  if (recorder) return recorder.stop();
  showError("voice-error", null);
  if (!navigator.mediaDevices) {
    return showError("voice-error", new Error("recording needs a secure page: open it over https or localhost"));
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    return showError("voice-error", new Error(`no microphone: ${error.message}`));
  }
  const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) =>
    MediaRecorder.isTypeSupported(t),
  );
  recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const parts = [];
  const started = performance.now();
  const timer = setInterval(() => {
    $("clip-status").textContent = `recording… ${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 100);
  recorder.addEventListener("dataavailable", (event) => parts.push(event.data));
  recorder.addEventListener("stop", () => {
    clearInterval(timer);
    stream.getTracks().forEach((track) => track.stop());
    const mime = recorder.mimeType.split(";")[0];
    const extension = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a" }[mime] || "audio";
    setClip(new File(parts, `recording.${extension}`, { type: mime }), `recorded ${mime}`);
    recorder = null;
    $("record").textContent = "Record";
  });
  recorder.start();
  $("record").textContent = "Stop recording";
}

async function createVoice() {
  showError("voice-error", null);
  const form = new FormData();
  if (clip) form.append("file", clip, clip.name);
  form.append("name", $("voice-name").value);
  try {
    const voice = await (await api("voices", { method: "POST", body: form })).json();
    await loadVoices(voice.id);
    $("clip-status").textContent = `created voice “${voice.name}” (${voice.id})`;
  } catch (error) {
    showError("voice-error", error);
  }
}

// ------------------------------------------------------------------ start

async function main() {
  // The key lives in this tab's session storage only; a server with keys answers 401 without it.
  $("api-key").value = sessionStorage.getItem("zonos-api-key") || "";
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem("zonos-api-key", $("api-key").value.trim());
    start();
  });
  await start();
  $("text").addEventListener("input", countText);
  $("stop").addEventListener("click", stopRun);
  $("reset").addEventListener("click", resetControls);
  $("speak").addEventListener("click", () => speak()); // the seed box's seed
  $("same-seed").addEventListener("click", () => speak(lastRun.seed)); // this run only: the box keeps its own
  $("download").addEventListener("click", download);
  $("clip-file").addEventListener("change", (event) => setClip(event.target.files[0], "file"));
  $("record").addEventListener("click", toggleRecording);
  $("create-voice").addEventListener("click", createVoice);
  document.body.dataset.ready = "true";
}

// Load the settings, the model card and the voices (again after the key changes).
async function start() {
  showError("error", null);
  try {
    if (!config) {
      config = await (await api(new URL("config.json", document.baseURI))).json();
      buildControls();
      showModelCard();
    }
    countText();
    await loadVoices();
  } catch (error) {
    showError("error", error);
  }
}

main();
