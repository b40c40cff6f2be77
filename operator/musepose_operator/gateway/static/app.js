// The gateway's page. Every user or server string goes in with textContent, never as HTML.
// The token lives in sessionStorage and travels as an Authorization header (no cookie: a
// cross-site page cannot make the browser send it, so CSRF does not apply).
"use strict";

const MAX_BYTES = 512 * 1024 * 1024;
const TYPES = {
  reference_image: ["image/png", "image/jpeg", "image/webp"],
  reference_video: ["video/mp4", "video/quicktime", "video/webm"],
  audio_file: ["audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg", "audio/mp4",
               "audio/aac", "audio/flac", "audio/ogg"],
};
const $ = (id) => document.getElementById(id);
const session = {
  get token() { return sessionStorage.getItem("musepose.token"); },
  get namespace() { return sessionStorage.getItem("musepose.namespace") || ""; },
};

function headers(extra) {
  const h = Object.assign({ Authorization: "Bearer " + session.token }, extra || {});
  if (session.namespace) h["X-Namespace"] = session.namespace;
  return h;
}

// A problem+json answer as one readable sentence per field at fault.
async function problemText(response) {
  try {
    const body = await response.json();
    const fields = (body.errors || []).map((e) => e.field + ": " + e.message);
    return fields.length ? fields.join("\n") : (body.detail || response.statusText);
  } catch (_) {
    return response.status + " " + response.statusText;
  }
}

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw new Error(await problemText(response));
  return response.status === 204 ? null : response.json();
}

function refuse(text) { $("refusal").textContent = text; }

function checkFile(field, file) {
  if (!file) return field + ": choose a file";
  if (!TYPES[field].includes(file.type)) {
    return field + ": " + (file.type || "this kind of file") + " is not accepted here";
  }
  if (file.size > MAX_BYTES) return field + ": larger than " + MAX_BYTES + " bytes";
  return null;
}

function showThumb(input) {
  const thumb = input.parentElement.querySelector(".thumb");
  const file = input.files[0];
  const wrong = checkFile(input.id, file);
  refuse(wrong || "");
  if (!thumb) return;
  thumb.hidden = !file || Boolean(wrong);
  if (file && !wrong) thumb.src = URL.createObjectURL(file);
}

async function upload(field, file) {
  const grant = await api("POST", "/uploads",
    { name: Date.now() + "-" + field + "-" + file.name.replace(/[^A-Za-z0-9._-]/g, "_"),
      content_type: file.type, size: file.size });
  const form = new FormData();
  for (const [key, value] of Object.entries(grant.fields)) form.append(key, value);
  form.append("file", file);
  const sent = await fetch(grant.url, { method: "POST", body: form });
  if (!sent.ok) throw new Error(field + ": the object store refused the upload (" + sent.status + ")");
  return grant.uri;
}

function options() {
  return { seed: Number($("seed").value) || 0, lower_vram: $("lower_vram").checked,
           watermark: $("watermark").checked, remove_background: $("remove_background").checked };
}

async function submit(event) {
  event.preventDefault();
  refuse("");
  const files = {};
  for (const field of Object.keys(TYPES)) {
    const file = $(field).files[0];
    const wrong = checkFile(field, file);
    if (wrong) { refuse(wrong); $(field).focus(); return; }
    files[field] = file;
  }
  $("submit").disabled = true;
  try {
    const payload = { id: "web-" + Date.now(), ...options() };
    for (const [field, file] of Object.entries(files)) {
      setStatus("Uploading " + file.name + " …");
      payload[field] = await upload(field, file);
    }
    await run(payload);
  } catch (err) {
    refuse(err.message);
    setStatus("");
  } finally {
    $("submit").disabled = false;
  }
}

async function run(payload) {
  payload.output_path = "outputs/" + payload.id + ".mp4";
  sessionStorage.setItem("musepose.payload." + payload.id, JSON.stringify(payload));
  const made = await api("POST", "/animate", payload);
  follow(made.id);
  listMine();
}

function setStatus(text) { $("card").hidden = false; $("status").textContent = text; }

function describe(view) {
  const p = view.progress || {};
  if (view.phase === "Queued" && p.queue_position) {
    return "Queued: place " + p.queue_position + (p.eta_seconds ? ", about " + p.eta_seconds + " s" : "");
  }
  const parts = [view.phase];
  if (p.stage) parts.push(p.stage);
  if (p.frames_total) parts.push("frames " + (p.frames_done || 0) + "/" + p.frames_total);
  if (p.percent !== undefined && p.percent !== null) parts.push(p.percent + "%");
  if (p.eta_seconds) parts.push("about " + p.eta_seconds + " s left");
  if (view.message && view.phase === "Failed") parts.push(view.message);
  return parts.join(" · ");
}

function show(view) {
  setStatus(describe(view));
  const bar = $("bar");
  const percent = (view.progress || {}).percent;
  bar.hidden = percent === undefined || percent === null;
  if (!bar.hidden) bar.value = percent;
  const out = view.output || {};
  if (view.phase === "Succeeded" && out.presigned_url) {
    $("result").hidden = false;
    // The poster shows before the video plays (the store's origin is in img-src).
    if (out.poster_presigned_url) $("player").poster = out.poster_presigned_url;
    else $("player").removeAttribute("poster");
    $("player").src = out.presigned_url;
    $("download").href = out.presigned_url;
  }
}

let following = null;

// Server-sent events over fetch (EventSource cannot send an Authorization header); on a
// broken connection it reconnects with Last-Event-ID, so nothing already shown comes again.
async function follow(id) {
  if (following) following.abort();
  const control = new AbortController();
  following = control;
  $("result").hidden = true;
  let lastId = null;
  for (let tries = 0; tries < 20 && !control.signal.aborted; tries++) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastId) h["Last-Event-ID"] = lastId;
      const response = await fetch("/animate/" + encodeURIComponent(id) + "/events",
                                    { headers: h, signal: control.signal });
      if (response.status === 204) return;
      if (!response.ok) { refuse(await problemText(response)); return; }
      const ended = await readEvents(response, (kind, data, eventId) => {
        if (eventId) lastId = eventId;
        if (kind === "cancelled") setStatus("Cancelled");
        else show(data);
      });
      if (ended) { listMine(); return; }
    } catch (err) {
      if (control.signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message", data = "", eventId = null;
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("id: ")) eventId = line.slice(4);
      }
      if (!data) continue;
      onEvent(kind, JSON.parse(data), eventId);
      if (kind === "done" || kind === "cancelled") return true;
    }
  }
}

function button(text, label, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", action);
  return b;
}

async function listMine() {
  let listing;
  try { listing = await api("GET", "/animate?limit=50"); } catch (err) { refuse(err.message); return; }
  const list = $("mine");
  list.replaceChildren();
  for (const item of listing.items) {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = item.id + " — " + describe(item) + " ";
    li.append(text);
    li.append(button("Show", "Show " + item.id, () => follow(item.id)));
    if (!["Succeeded", "Failed"].includes(item.phase)) {
      li.append(button("Cancel", "Cancel " + item.id, async () => {
        try { await api("DELETE", "/animate/" + encodeURIComponent(item.id)); } catch (err) { refuse(err.message); }
        listMine();
      }));
    }
    const saved = sessionStorage.getItem("musepose.payload." + item.id);
    if (saved) {
      li.append(button("Re-run, new seed", "Re-run " + item.id + " with a new seed", () => {
        const again = JSON.parse(saved);
        again.id = "web-" + Date.now();
        again.seed = newSeed();
        run(again).catch((err) => refuse(err.message));
      }));
    }
    list.append(li);
  }
}

function newSeed() { return Math.floor(Math.random() * 2147483647); }

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem("musepose.token", $("token").value.trim());
  sessionStorage.setItem("musepose.namespace", $("namespace").value.trim());
  $("token").value = "";
  try {
    await api("GET", "/animate?limit=1");
  } catch (err) {
    sessionStorage.clear();
    refuse(err.message);
    return;
  }
  enter();
}

function enter() {
  $("signin").hidden = true;
  $("work").hidden = false;
  $("who").textContent = session.namespace ? "Namespace " + session.namespace : "";
  refuse("");
  listMine();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("animate-form").addEventListener("submit", submit);
  $("new-seed").addEventListener("click", () => { $("seed").value = newSeed(); });
  $("refresh").addEventListener("click", listMine);
  $("signout").addEventListener("click", () => { sessionStorage.clear(); location.reload(); });
  for (const field of Object.keys(TYPES)) $(field).addEventListener("change", (e) => showThumb(e.target));
  if (session.token) enter();
});
