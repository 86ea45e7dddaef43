// The example app's browser page: record or pick audio, upload it straight to storage
// (one POST, or parts in parallel), complete it, list the caller's recordings, play one.
// No framework and no build step; every call follows the API contract (sections 3, 5, 7).

const API_PATH = "/api/v1/recordings";
// S3's smallest part: a file of at most this many bytes goes up in one POST.
const SINGLE_POST_MAX_BYTES = 5 * 1024 * 1024;
const PARALLEL_PARTS = 4;
const PART_ATTEMPTS = 3;
const COMPLETE_ROUNDS = 3;
// A 503 or 429 (storage or the database briefly away) is asked again after its Retry-After.
const UNAVAILABLE_ATTEMPTS = 4;
const MAX_RETRY_AFTER_SECONDS = 10;
const RECORDER_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"];
const EXTENSIONS = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a" };
const TYPES_BY_EXTENSION = {
  wav: "audio/wav", wave: "audio/wav", webm: "audio/webm", weba: "audio/webm", ogg: "audio/ogg",
  oga: "audio/ogg", opus: "audio/ogg", m4a: "audio/mp4", mp4: "audio/mp4", m4b: "audio/mp4",
  mp3: "audio/mpeg", flac: "audio/flac", aac: "audio/aac", caf: "audio/x-caf", amr: "audio/amr",
  awb: "audio/amr-wb", "3gp": "audio/3gpp", "3gpp": "audio/3gpp",
};
const PLAYABLE = new Set(["uploaded", "processing", "transcribed"]);

const $ = (id) => document.getElementById(id);
const ui = {
  token: $("token"), apiBase: $("api-base"), record: $("record"), stop: $("stop"),
  recordingState: $("recording-state"), file: $("file"), upload: $("upload"), save: $("save"),
  progress: $("progress"), status: $("status"), error: $("error"), refresh: $("refresh"),
  recordings: $("recordings"), player: $("player"),
};

/** An error answer of the API: its ErrorResponse body (message, error_code, details). */
class ApiError extends Error {
  constructor(status, body) {
    const message = typeof body?.message === "string" ? body.message : `HTTP ${status}`;
    super(body?.error_code ? `${message} (${body.error_code})` : message);
    this.status = status;
    this.code = body?.error_code ?? null;
    this.details = body?.details ?? {};
  }
}

/** The API's recordings URL, from the API base URL field (this page's server if empty). */
function apiRoot() {
  const typed = ui.apiBase.value.trim();
  const base = typed || new URL("..", location.href).href;
  // Checked before any request: "localhost:8000" parses as a URL of scheme "localhost:",
  // and "127.0.0.1:8000" as a path on this page's server; fetch then fails in ways that
  // look like a CORS or a routing problem.
  let url = null;
  try {
    url = new URL(base);
  } catch {
    // said below
  }
  if (!url || !["http:", "https:"].includes(url.protocol)) {
    throw new Error(typed.includes("://") ?
      `The API base URL "${typed}" is not an http:// or https:// URL.` :
      `The API base URL "${typed}" has no scheme: write http://${typed} (or https://${typed}).`);
  }
  return base.replace(/\/+$/, "") + API_PATH;
}

async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Authorization: `Bearer ${ui.token.value.trim()}` };
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  for (let attempt = 1; ; attempt += 1) {
    let response;
    try {
      response = await fetch(apiRoot() + path, init);
    } catch (error) {
      if (signal?.aborted) throw error;
      const origin = new URL(apiRoot()).origin;
      const hint = origin === location.origin ? "" :
        ` The API is on another origin than this page: its HELPPET_CORS_ORIGINS must list ${location.origin}.`;
      throw new Error(`Could not reach the API at ${origin}.${hint}`);
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (response.ok) return data;
    const error = new ApiError(response.status, data);
    if (![429, 503].includes(response.status) || attempt >= UNAVAILABLE_ATTEMPTS) throw error;
    await sleep(1000 * retryAfterSeconds(response, error), signal);
  }
}

function retryAfterSeconds(response, error) {
  const said = Number(response.headers.get("Retry-After") ?? error.details.retry_after);
  return Number.isFinite(said) && said >= 0 ? Math.min(said, MAX_RETRY_AFTER_SECONDS) : 1;
}

// One key per chosen file: initiating it again (Upload clicked again after a failure)
// answers the same recording with a fresh ticket instead of starting a second one.
function newIdempotencyKey() {
  return globalThis.crypto?.randomUUID?.() ??
    `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// ------------------------------------------------------------------ sending bytes

function storageMessage(xhr) {
  // S3 and LocalStorage answer errors in S3's XML: <Error><Code/><Message/></Error>.
  const xml = new DOMParser().parseFromString(xhr.responseText || "<x/>", "application/xml");
  const text = xml.querySelector("Message")?.textContent || xml.querySelector("Code")?.textContent;
  return `storage answered ${xhr.status}${text ? `: ${text}` : ""}`;
}

/** Send `body` with XMLHttpRequest, whose upload events tell the bytes sent; `signal` aborts. */
function send(method, url, body, onProgress, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const xhr = new XMLHttpRequest();
    const abort = () => xhr.abort();
    const settle = (settler, value) => {
      signal.removeEventListener("abort", abort);
      settler(value);
    };
    signal.addEventListener("abort", abort);
    xhr.open(method, url);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ?
      settle(resolve, xhr) : settle(reject, new Error(storageMessage(xhr))));
    // Never the URL itself in a message: it carries a signature.
    xhr.onerror = () =>
      settle(reject, new Error(`could not reach storage at ${new URL(url).origin}`));
    xhr.onabort = () => settle(reject, signal.reason);
    xhr.send(body);
  });
}

let uploadsStarted = 0;

/**
 * One click of Upload: the progress bar (from the bytes sent of each part, or of the one
 * POST) and the abort signal of every request it sends.
 */
class UploadRun {
  constructor(total) {
    this.total = total;
    this.sent = new Map();
    this.controller = new AbortController();
    this.signal = this.controller.signal;
    // A generation token: an event of an older run that arrives late (already queued when
    // that run was aborted) finds a newer number here and leaves the bar alone.
    uploadsStarted += 1;
    this.generation = uploadsStarted;
    ui.progress.max = total;
    ui.progress.value = 0;
  }

  set(key, bytes) {
    if (this.generation !== uploadsStarted) return;
    this.sent.set(key, bytes);
    let sum = 0;
    for (const value of this.sent.values()) sum += value;
    ui.progress.value = Math.min(sum, this.total);
  }

  /** Abandon whatever this run still has in flight: transfers, waits, API calls. */
  abort() {
    this.controller.abort();
  }
}

/** Wait `ms`; an aborted `signal` ends the wait at once with its reason. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", stop);
      resolve();
    }, ms);
    signal?.addEventListener("abort", stop, { once: true });
  });
}

// The file's SHA-256, declared at initiate: the ticket then pins it, so storage takes only
// these bytes and completion verifies them where they land. WebCrypto exists only in
// secure contexts (https, localhost); elsewhere the upload goes without it.
async function sha256Hex(blob) {
  if (!globalThis.crypto?.subtle) return undefined;
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function uploadInOnePost(source, run) {
  const body = {
    filename: source.filename, content_type: source.contentType,
    idempotency_key: source.idempotencyKey,
  };
  const sha256 = await sha256Hex(source.blob);
  if (sha256) body.content_sha256 = sha256;
  const ticket = await api("/upload/initiate", { method: "POST", body, signal: run.signal });
  const form = new FormData();
  for (const [name, value] of Object.entries(ticket.upload_fields)) form.append(name, value);
  form.append("file", source.blob, "audio"); // the signed key names the object, not this
  await send("POST", ticket.upload_url, form, (loaded) => run.set(0, loaded), run.signal);
  run.set(0, source.blob.size);
  return complete(ticket.recording_id, source);
}

/**
 * The parts storage holds (number → size), counted as completion counts them: listed in
 * `uploaded_parts` with the planned size. A part listed with another size is sent again.
 */
function heldParts(plan, fileSize) {
  const held = new Map();
  for (const { part_number: number, size } of plan.uploaded_parts ?? []) {
    const planned = Math.min(plan.part_size, fileSize - (number - 1) * plan.part_size);
    if (size === planned) held.set(number, size);
  }
  return held;
}

async function putPart(recordingId, part, partSize, blob, run) {
  const start = (part.part_number - 1) * partSize;
  const body = blob.slice(start, start + part.size);
  let url = part.url;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await send("PUT", url, body, (loaded) => run.set(part.part_number, loaded), run.signal);
      run.set(part.part_number, part.size);
      return;
    } catch (error) {
      if (run.signal.aborted) throw error;
      run.set(part.part_number, 0);
      if (attempt >= PART_ATTEMPTS) throw new Error(`Part ${part.part_number}: ${error.message}`);
      await sleep(500 * attempt, run.signal);
      // A fresh URL, in case this one expired (none only once the file is assembled).
      const fresh = await api(`/upload/multipart/${recordingId}/parts`, {
        method: "POST", body: { part_numbers: [part.part_number] }, signal: run.signal,
      });
      const again = fresh.parts.find((p) => p.part_number === part.part_number);
      // The failed attempt may have reached storage, only its answer lost: the server signs
      // every part asked for, but lists that one among what storage holds.
      if (!again || heldParts(fresh, blob.size).has(part.part_number)) {
        run.set(part.part_number, part.size);
        return;
      }
      url = again.url;
    }
  }
}

/** Send the parts of `plan` that storage lacks; the first to fail for good aborts the rest. */
async function putParts(recordingId, plan, blob, run) {
  const held = heldParts(plan, blob.size);
  for (const [number, size] of held) run.set(number, size);
  const queue = plan.parts.filter((part) => !held.has(part.part_number));
  let failure = null;
  const worker = async () => {
    while (queue.length && !failure) {
      const part = queue.shift();
      try {
        await putPart(recordingId, part, plan.part_size, blob, run);
      } catch (error) {
        if (!failure) {
          failure = error;
          run.abort();
        }
        return;
      }
    }
  };
  // Every worker settles (the abort makes that immediate) before the failure is reported,
  // so that no request of this upload is still running when the user can start the next.
  await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, queue.length) }, worker));
  if (failure) throw failure;
}

async function uploadInParts(source, run) {
  const plan = await api("/upload/multipart/initiate", {
    method: "POST",
    body: {
      filename: source.filename, content_type: source.contentType,
      file_size_bytes: source.blob.size, idempotency_key: source.idempotencyKey,
    },
    signal: run.signal,
  });
  const id = plan.recording_id;
  await putParts(id, plan, source.blob, run);
  for (let round = 1; ; round += 1) {
    try {
      return await complete(id, source);
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== "UPLOAD_INCOMPLETE" ||
          round >= COMPLETE_ROUNDS) throw error;
      const missing = error.details.missing_parts ?? [];
      for (const number of missing) run.set(number, 0);
      const fresh = await api(`/upload/multipart/${id}/parts`, {
        method: "POST", body: { part_numbers: missing }, signal: run.signal,
      });
      await putParts(id, fresh, source.blob, run);
    }
  }
}

function complete(recordingId, source) {
  return api(`/upload/complete/${recordingId}`, {
    method: "POST", body: { file_size_bytes: source.blob.size },
  });
}

// ------------------------------------------------------------------ the page

let chosen = null; // { blob, filename, contentType }
let recorder = null;
let running = null; // the UploadRun under way: one upload at a time

function say(text) {
  ui.status.textContent = text;
}

function showError(error) {
  ui.error.textContent = error instanceof Error ? error.message : String(error);
}

/** Run `action` for a control, showing its failure; the controls wait meanwhile. */
async function guarded(action) {
  ui.error.textContent = "";
  try {
    await action();
  } catch (error) {
    say("");
    showError(error);
  }
}

function bareType(type) {
  return type.split(";")[0].trim().toLowerCase();
}

function choose(source, { recorded = false } = {}) {
  chosen = { ...source, idempotencyKey: newIdempotencyKey() };
  ui.upload.disabled = running !== null;
  if (!running) ui.progress.value = 0;
  if (ui.save.href) URL.revokeObjectURL(ui.save.href);
  ui.save.removeAttribute("href");
  ui.save.hidden = !recorded;
  if (recorded) {
    ui.save.href = URL.createObjectURL(source.blob);
    ui.save.download = source.filename;
  }
  const what = `${source.blob.size} bytes (${source.contentType || "unknown type"})`;
  say(running ? `Chose ${what}; it can go up once this upload ends.` : `Ready to upload ${what}.`);
}

async function startRecording() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    throw new Error(`The microphone is not available: ${error.message}`);
  }
  const mimeType = RECORDER_TYPES.find((type) => MediaRecorder.isTypeSupported(type));
  recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  const started = performance.now();
  recorder.ondataavailable = (event) => {
    if (event.data.size) chunks.push(event.data);
  };
  recorder.onstop = () => {
    for (const track of stream.getTracks()) track.stop();
    const type = bareType(recorder.mimeType || chunks[0]?.type || "audio/webm");
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    ui.recordingState.textContent = `Recorded ${seconds} s.`;
    recorder = null;
    ui.record.disabled = false;
    choose({
      blob: new Blob(chunks, { type }),
      filename: `recording.${EXTENSIONS[type] ?? "webm"}`,
      contentType: type,
    }, { recorded: true });
  };
  recorder.start();
  ui.record.disabled = true;
  ui.stop.disabled = false;
  ui.upload.disabled = true;
  ui.recordingState.textContent = "Recording…";
}

function stopRecording() {
  ui.stop.disabled = true;
  recorder?.stop();
}

function pickFile() {
  const file = ui.file.files[0];
  if (!file) return;
  const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  // Browsers type .webm, .mp4 and .3gp files as video/...: only an audio/ type is taken as
  // it is; otherwise the extension says which audio format the file is.
  const typed = bareType(file.type);
  choose({
    blob: file,
    filename: file.name,
    contentType: (typed.startsWith("audio/") && typed) || TYPES_BY_EXTENSION[extension] || typed
      || "application/octet-stream",
  });
}

async function upload() {
  if (!chosen || running) return;
  apiRoot(); // a malformed API base URL is said before the file is read
  const source = chosen;
  const run = new UploadRun(source.blob.size);
  running = run;
  ui.upload.disabled = true;
  ui.record.disabled = true;
  try {
    const inParts = source.blob.size > SINGLE_POST_MAX_BYTES;
    say(inParts ? "Uploading in parts…" : "Uploading…");
    const recording = await (inParts ? uploadInParts : uploadInOnePost)(source, run);
    say(`Uploaded ${recording.file_size_bytes} bytes: ${recording.status}.`);
    if (chosen === source) chosen = { ...source, idempotencyKey: newIdempotencyKey() };
    await refresh();
  } finally {
    run.abort();
    running = null;
    ui.upload.disabled = false;
    ui.record.disabled = recorder !== null;
  }
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function row(recording) {
  const tr = document.createElement("tr");
  tr.dataset.recordingId = recording.id;
  tr.dataset.status = recording.status;
  const created = new Date(recording.created_at).toLocaleString();
  for (const text of [created, recording.status, formatBytes(recording.file_size_bytes)]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const cell = document.createElement("td");
  const play = document.createElement("button");
  play.type = "button";
  play.textContent = "Play";
  play.setAttribute("aria-label", `Play the recording of ${created}`);
  play.disabled = !PLAYABLE.has(recording.status);
  play.addEventListener("click", () => guarded(() => playRecording(recording.id)));
  cell.append(play);
  tr.append(cell);
  return tr;
}

async function refresh() {
  const page = await api("/?limit=20");
  ui.recordings.replaceChildren(...page.items.map(row));
}

async function playRecording(recordingId) {
  const { download_url: url } = await api(`/${recordingId}/download-url`);
  ui.player.src = url;
  say("Playing.");
  // The browser may refuse to start playing on its own; the controls can then start it.
  await ui.player.play().catch(() => undefined);
}

ui.apiBase.placeholder = new URL("..", location.href).href;
ui.apiBase.addEventListener("change", () => guarded(apiRoot));
$("connection").addEventListener("submit", (event) => event.preventDefault());
ui.record.addEventListener("click", () => guarded(startRecording));
ui.stop.addEventListener("click", () => guarded(stopRecording));
ui.file.addEventListener("change", () => guarded(pickFile));
ui.upload.addEventListener("click", () => guarded(upload));
ui.refresh.addEventListener("click", () => guarded(refresh));
ui.player.addEventListener("error", () => showError("The recording could not be played."));
