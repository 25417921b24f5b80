// ui.js - pieces every page uses: tables that turn into cards on a phone,
// status badges, progress, errors, two-step confirm buttons, shown-once
// secrets, the toast, the dataset report (shared by the dataset page and
// the new-job wizard) and stored files with their downloads (the registry).

import { downloadBlob } from './api.js';
import { h, replace } from './dom.js';
import { t, fmtBytes, fmtInt, fmtNum } from './i18n.js';

// table([{key, label, num, cell(row) -> node|string}], rows, {empty})
export function table(cols, rows, opts = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, opts.empty || t('common.empty'));
  const head = h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label))));
  const body = h('tbody', {}, rows.map((r) => h('tr', { dataset: { id: r.id } },
    cols.map((c) => h('td', { class: c.num ? 'num' : null, 'data-label': c.label },
      c.cell ? c.cell(r) : (r[c.key] ?? '—'))))));
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'responsive' }, opts.caption ? h('caption', { class: 'sr-only' }, opts.caption) : null, head, body));
}

// Job states -> badge colour. The words come from the message tables.
const STATE_CLASS = {
  validating_files: 'info', queued: 'idle', dispatched: 'idle', running: 'info', cancelling: 'warn', pausing: 'warn',
  succeeded: 'ok', failed: 'bad', cancelled: 'idle',
  validating: 'info', valid: 'ok', invalid: 'bad',
  pending: 'idle', delivering: 'info', abandoned: 'bad',
  allowed: 'ok', denied: 'bad',
  ready: 'ok', draft: 'idle', archived: 'idle',
  loading: 'info', stopped: 'idle', paused: 'warn', active: 'ok',
  collecting: 'info', ok: 'ok', alert: 'bad', unknown: 'idle', unreachable: 'bad',
};
export function badge(state, prefix = 'state') {
  return h('span', { class: `badge ${STATE_CLASS[state] || 'idle'}`, dataset: { state } }, t(`${prefix}.${state}`));
}

export const TERMINAL = ['succeeded', 'failed', 'cancelled'];
export const ACTIVE = ['validating_files', 'queued', 'dispatched', 'running', 'cancelling', 'pausing'];
// what a job's page offers (api/src/jobs.c, job_moves: what each action does in each state)
export const CANCELLABLE = ['validating_files', 'queued', 'dispatched', 'running', 'pausing', 'paused'];
export const PAUSABLE = ['queued', 'dispatched', 'running'];
export const RESUMABLE = ['paused'];

// A job's progress from its latest metrics: {step, total, frac} or null.
export function jobProgress(job) {
  const m = job.latest_metrics || {};
  const total = Number(m.total_steps);
  const step = Number(m.step);
  if (job.state === 'succeeded') return { step: total || step || 0, total: total || step || 0, frac: 1 };
  if (!total || !Number.isFinite(step)) return null;
  return { step, total, frac: Math.min(1, step / total) };
}

export function progressBar(p, label) {
  if (!p) return h('span', { class: 'muted' }, '—');
  return h('div', { class: 'progress' },
    h('progress', { max: p.total || 1, value: p.step, 'aria-label': label || t('jobs.progress') }),
    h('span', { class: 'label' }, t('jobs.steps_of', { step: fmtInt(p.step), total: fmtInt(p.total) })));
}

export function errorBox(err) {
  const parts = [err.message || String(err)];
  if (err.param) parts.push(t('error.param', { param: err.param }));
  if (err.line) parts.push(t('error.line', { line: err.line }));
  return h('div', { class: 'notice bad', role: 'alert' }, parts.join(' · '));
}

export function notice(text, kind = '') {
  return h('div', { class: `notice ${kind}` }, text);
}

// A button that asks once more before it acts ("Cancel job" -> "Really cancel?").
// confirmLabel may be a function, asked when the button arms (a question
// that names what is chosen at that moment: "Move production from 1 to 2?").
export function confirmButton(label, confirmLabel, action, attrs = {}) {
  let armed = false;
  let timer = null;
  const b = h('button', { type: 'button', class: 'danger', ...attrs }, label);
  b.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      b.classList.add('armed');
      b.textContent = typeof confirmLabel === 'function' ? confirmLabel() : confirmLabel;
      timer = setTimeout(() => { armed = false; b.classList.remove('armed'); b.textContent = label; }, 6000);
      return;
    }
    clearTimeout(timer);
    b.disabled = true;
    try { await action(); } finally { b.disabled = false; armed = false; b.classList.remove('armed'); b.textContent = label; }
  });
  return b;
}

// A secret shown once (a new key, a webhook secret), with a copy button.
export function secretBox(title, value) {
  const input = h('input', { type: 'text', readonly: true, value, 'aria-label': title, class: 'mono', dataset: { secret: '' } });
  const copy = h('button', { type: 'button' }, t('common.copy'));
  copy.addEventListener('click', async () => {
    input.select();
    try { await navigator.clipboard.writeText(value); toast(t('common.copied')); } catch (e) { /* selected: the user copies */ }
  });
  return h('div', { class: 'notice warn' }, h('p', {}, h('strong', {}, title), ' ', t('common.shown_once')), h('div', { class: 'secret' }, input, copy));
}

let toastTimer = null;
export function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('show'), 2500);
}

export function field(labelText, control, help, id) {
  control.id = control.id || id;
  return h('div', { class: 'field' }, h('label', { for: control.id }, labelText), control, help ? h('div', { class: 'help' }, help) : null);
}

export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

export function stat(label, value) {
  return h('div', { class: 'stat' }, h('div', { class: 'v' }, value), h('div', { class: 'k' }, label));
}

// The validation report of a dataset: summary, statistics, every error with
// its line number, and the first examples rendered as conversations.
export function datasetReport(ds) {
  const rep = ds.report || {};
  const st = ds.stats || {};
  const out = h('div', { class: 'report', dataset: { dataset: ds.id, status: ds.status } });
  if (ds.status === 'validating') {
    out.append(notice(t('datasets.validating'), 'info'));
    return out;
  }
  out.append(h('div', { class: 'cards' },
    stat(t('datasets.status'), badge(ds.status)),
    stat(t('datasets.format'), ds.format || '—'),
    stat(t('datasets.examples'), fmtInt(rep.n_examples)),
    stat(t('datasets.lines'), fmtInt(rep.n_lines)),
    stat(t('datasets.errors'), fmtInt(rep.n_errors)),
    stat(t('datasets.approx_tokens'), fmtInt(st.approx_tokens)),
    stat(t('datasets.mean_chars'), fmtNum(st.mean_chars, 0)),
    stat(t('datasets.max_chars'), fmtInt(st.max_chars))));
  if (st.roles && Object.keys(st.roles).length) {
    out.append(h('p', { class: 'muted small' }, t('datasets.roles'), ': ',
      Object.entries(st.roles).map(([r, n]) => `${r} ${fmtInt(n)}`).join(' · ')));
  }
  const errors = rep.errors || [];
  if (errors.length) {
    out.append(h('h3', {}, t('datasets.errors_title', { n: fmtInt(rep.n_errors) })));
    out.append(table([
      { label: t('datasets.line'), num: true, cell: (e) => h('span', { class: 'mono', dataset: { line: e.line } }, e.line ? String(e.line) : '—') },
      { label: t('datasets.code'), cell: (e) => h('code', {}, e.code) },
      { label: t('datasets.message'), cell: (e) => e.message },
    ], errors));
    if (rep.n_errors > errors.length) out.append(h('p', { class: 'muted' }, t('datasets.more_errors', { n: fmtInt(rep.n_errors - errors.length) })));
  }
  const convos = ds.preview_messages || [];
  if (convos.length) {
    out.append(h('h3', {}, t('datasets.preview')));
    for (const turns of convos) {
      out.append(h('div', { class: 'convo' }, turns.map((tn) => h('div', { class: `turn ${String(tn.role).replace(/[^a-z_]/g, '')}` },
        h('span', { class: 'role' }, tn.role), tn.content, tn.truncated ? h('span', { class: 'more' }, ' …') : null))));
    }
  } else if ((ds.preview || []).length) {
    out.append(h('h3', {}, t('datasets.preview')));
    for (const text of ds.preview) out.append(h('pre', {}, text));
  }
  return out;
}

export function loading() {
  return h('p', { class: 'muted', 'aria-busy': 'true' }, t('common.loading'));
}

// Replace a container's content with a page-level error.
export function failInto(el, err) {
  replace(el, errorBox(err));
}

// A file chooser whose button speaks the console's language (the browser's
// own input says "Choose File" in the browser's): the real input stays in
// the page, visually hidden but focusable, and the label is its button.
export function filePicker(labelText, buttonText, accept, onFile) {
  const id = `file-${Math.random().toString(36).slice(2, 9)}`;
  const input = h('input', { type: 'file', id, accept, class: 'file-input' });
  const name = h('span', { class: 'muted small file-name' }, t('common.no_file'));
  input.addEventListener('change', () => {
    const f = input.files[0];
    name.textContent = f ? f.name : t('common.no_file');
    if (f) onFile(f);
  });
  return h('div', { class: 'field' }, h('div', { class: 'label' }, labelText),
    h('div', { class: 'row' }, input, h('label', { for: id, class: 'button' }, buttonText), name));
}

// The first 12 hex digits of a SHA-256, the whole in its title.
export function shortSha(sha) {
  if (!sha) return '—';
  return h('code', { title: sha, dataset: { sha256: sha } }, sha.slice(0, 12));
}

async function sha256Hex(blob) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Download one stored file ({path, bytes, sha256, url} of an artifact):
// fetched with the key (api.js downloadBlob), with a progress bar, checked
// against its SHA-256 where the browser can hash (a secure context: https
// or localhost), then saved under its name. A file that does not match is
// not saved.
export function downloadControl(file) {
  const name = file.path.split('/').pop();
  const btn = h('button', { type: 'button', dataset: { download: file.path } }, t('files.download'));
  const bar = h('progress', { max: file.bytes || 1, value: 0, hidden: true, 'aria-label': t('files.download_progress', { file: name }) });
  const status = h('span', { class: 'muted small', 'aria-live': 'polite' });
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    status.textContent = '';
    status.classList.remove('bad-text');
    delete status.dataset.verified;
    try {
      const blob = await downloadBlob(file.url, (done, total) => {
        bar.max = total || file.bytes || 1;
        bar.value = done;
      }, { size: file.bytes });
      const canHash = Boolean(globalThis.crypto && crypto.subtle);
      if (canHash && (await sha256Hex(blob)) !== file.sha256) throw new Error(t('files.sha_mismatch', { file: name }));
      const a = h('a', { href: URL.createObjectURL(blob), download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      status.textContent = canHash ? t('files.verified') : t('files.saved');
      status.dataset.verified = String(canHash);
    } catch (e) {
      status.textContent = e.message;
      status.classList.add('bad-text');
    } finally {
      btn.disabled = false;
      bar.hidden = true;
    }
  });
  return h('div', { class: 'row download' }, btn, bar, status);
}

// The files of a stored folder, each with its size, digest and download.
export function filesTable(files, caption) {
  return table([
    { label: t('files.path'), cell: (f) => h('span', { class: 'mono break' }, f.path) },
    { label: t('files.size'), num: true, cell: (f) => fmtBytes(f.bytes) },
    { label: t('files.sha256'), cell: (f) => shortSha(f.sha256) },
    { label: '', cell: (f) => downloadControl(f) },
  ], files.map((f) => ({ ...f, id: f.path })), { empty: t('files.none'), caption });
}

// The chips of a version's aliases ("production", "latest").
export function aliasChips(aliases) {
  if (!aliases || !aliases.length) return '—';
  return h('span', { class: 'chips' }, aliases.map((a) => h('span', { class: 'chip', dataset: { alias: a } }, a)));
}
