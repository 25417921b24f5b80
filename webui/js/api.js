// api.js - the only way the console talks to ftplat: the public REST API
// (docs/api.md), with the user's key in the Authorization header.
//
// The key lives in sessionStorage: it is gone when the browser tab closes,
// it is never written to localStorage, a cookie or a URL. A 401 from any
// call forgets it and goes back to sign-in.

import { SseParser } from './sse.js';

const KEY = 'ftplat.key';
let onUnauthorized = () => {};

export function getKey() {
  try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; }
}
export function setKey(k) { sessionStorage.setItem(KEY, k); }
export function clearKey() { try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing kept */ } }
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// The API's error object {type, code, message, param, line}, as an Error.
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.param = e.param ?? null;
    this.line = e.line ?? null;
  }
}

function headers(key, extra) {
  const hd = { Accept: 'application/json', ...extra };
  const k = key ?? getKey();
  if (k) hd.Authorization = `Bearer ${k}`;
  return hd;
}

async function parse(r) {
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!r.ok) {
    const err = new ApiError(r.status, body);
    if (r.status === 401) onUnauthorized(err);
    throw err;
  }
  return body;
}

// api('GET', '/v1/fine_tuning/jobs', null, {limit: 20}) -> the JSON answer.
export async function api(method, path, body, query, opts = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
    const s = q.toString();
    if (s) url += `?${s}`;
  }
  const init = { method, headers: headers(opts.key, body ? { 'Content-Type': 'application/json' } : {}), signal: opts.signal };
  if (body) init.body = JSON.stringify(body);
  return parse(await fetch(url, init));
}

// Every object of a paged list (limit / after / has_more / last_id), up to
// maxPages pages of 100: /v1/models lists checkpoints and fine-tuned models
// before the base models, newest first, so one page may not reach them.
export async function listAll(path, query = {}, maxPages = 20) {
  let out = [];
  let after = null;
  for (let i = 0; i < maxPages; i += 1) {
    const r = await api('GET', path, null, { ...query, limit: 100, after });
    out = out.concat(r.data);
    if (!r.has_more || !r.last_id) break;
    after = r.last_id;
  }
  return out;
}

// POST /v1/files with a progress callback (fetch has no upload progress).
export function uploadFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', '/v1/files');
    x.setRequestHeader('Authorization', `Bearer ${getKey()}`);
    x.setRequestHeader('Accept', 'application/json');
    x.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    x.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(x.responseText); } catch (e) { body = null; }
      if (x.status >= 200 && x.status < 300) {
        onProgress(file.size, file.size);
        resolve(body);
      } else {
        const err = new ApiError(x.status, body);
        if (x.status === 401) onUnauthorized(err);
        reject(err);
      }
    });
    x.addEventListener('error', () => reject(new ApiError(0, { error: { message: 'network error' } })));
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('file', file, file.name);
    x.send(form);
  });
}

// A stored file (GET /v1/registry/artifacts/{id}/files/{file}) as a Blob,
// read with the key in the header (a plain link could not send it; the key
// never goes in a URL), onProgress(done, total) as it arrives.
export async function downloadBlob(url, onProgress, opts = {}) {
  const r = await fetch(url, { headers: headers(null, { Accept: '*/*' }), signal: opts.signal });
  if (!r.ok) await parse(r);
  const total = Number(r.headers.get('Content-Length')) || opts.size || 0;
  const reader = r.body.getReader();
  const chunks = [];
  let done = 0;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    chunks.push(value);
    done += value.byteLength;
    onProgress(done, total);
  }
  return new Blob(chunks, { type: r.headers.get('Content-Type') || 'application/octet-stream' });
}

// A job's events, live: GET .../events?stream=true read with fetch, every
// event given to onEvent(event) oldest first, onEnd(status) once the job is
// over. A dropped connection is resumed with Last-Event-ID after a pause
// (the server's "retry", 3 s). Returns a function that stops it.
export function streamJobEvents(jobId, onEvent, onEnd) {
  const ctl = new AbortController();
  let lastId = '';
  let retryMs = 3000;
  let stopped = false;

  async function once() {
    const hd = headers(null, { Accept: 'text/event-stream' });
    if (lastId) hd['Last-Event-ID'] = lastId;
    const r = await fetch(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events?stream=true`, { headers: hd, signal: ctl.signal });
    if (!r.ok) {
      await parse(r);
      return true;
    }
    let ended = false;
    const parser = new SseParser((ev) => {
      if (ev.event === 'end') {
        ended = true;
        let st = null;
        try { st = JSON.parse(ev.data).status; } catch (e) { st = null; }
        onEnd(st);
        return;
      }
      lastId = ev.id;
      try { onEvent(JSON.parse(ev.data)); } catch (e) { /* a malformed event is skipped */ }
    });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(dec.decode(value, { stream: true }));
      if (parser.retry) retryMs = parser.retry;
    }
    return ended;
  }

  (async () => {
    while (!stopped) {
      try {
        if (await once()) return;
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) return;
      }
      await new Promise((res) => { setTimeout(res, retryMs); });
    }
  })();
  return () => { stopped = true; ctl.abort(); };
}

// A chat with a deployment, streamed: POST .../chat/completions answers the
// endpoint's own server-sent events (OpenAI's chat.completion.chunk, then
// [DONE]). onDelta(text) gets each piece of the answer as it arrives;
// resolves with {finish, usage} at the end; an error before the stream (a
// status) or inside it (an {"error"} event) rejects with an ApiError.
export async function streamChat(deploymentId, body, onDelta, signal) {
  const r = await fetch(`/v1/deployments/${encodeURIComponent(deploymentId)}/chat/completions`, {
    method: 'POST', signal,
    headers: headers(null, { 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!r.ok) await parse(r);   // throws the API's error
  const out = { finish: null, usage: null };
  let failure = null;
  const parser = new SseParser((ev) => {
    if (ev.data === '[DONE]' || failure) return;
    let x = null;
    try { x = JSON.parse(ev.data); } catch (e) { return; }
    if (x.error) { failure = new ApiError(502, x); return; }
    const c = (x.choices || [])[0];
    if (c && c.delta && c.delta.content) onDelta(c.delta.content);
    if (c && c.finish_reason) out.finish = c.finish_reason;
    if (x.usage) out.usage = x.usage;
  });
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(dec.decode(value, { stream: true }));
  }
  parser.feed(dec.decode());
  if (failure) throw failure;
  return out;
}
