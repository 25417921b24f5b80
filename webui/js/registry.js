// registry.js - what the registry pages (pages/registry.js, regmodel.js,
// version.js, export.js) and the job page share: links to registered
// models and versions, the exports table, an export's progress, and the
// help lines of export formats and their options.
//
// The formats, their options, choices, ranges and defaults come from
// GET /v1/registry/export_formats (ft/exports.h's table), never from a copy
// here; only the one-line help is translated: "export_format.<format>" and
// "export_option.<format>.<option>" in the message tables, the API's
// English description when a row has none (a format added in C shows
// before its translation does; test_console_static.py asks for both).

import { api } from './api.js';
import { h } from './dom.js';
import { fmtBytes, fmtTime, has, t } from './i18n.js';
import { badge, table } from './ui.js';

export const EXPORT_ACTIVE = ['queued', 'dispatched', 'running', 'cancelling'];
export const EXPORT_CANCELLABLE = ['queued', 'dispatched', 'running'];

export function modelHref(name, version) {
  const base = `#/registry/${encodeURIComponent(name)}`;
  return version === undefined || version === null ? base : `${base}/${encodeURIComponent(version)}`;
}

export function versionLink(name, version) {
  return h('a', { href: modelHref(name, version), class: 'ref', dataset: { versionRef: `${name}/${version}` } }, `${name}/${version}`);
}

// "name/3" (a job's parent_version) -> a link to that version.
export function refLink(ref) {
  const i = ref.lastIndexOf('/');
  return i > 0 ? versionLink(ref.slice(0, i), ref.slice(i + 1)) : ref;
}

let formatsCache = null;
export async function exportFormats() {
  if (!formatsCache) formatsCache = (await api('GET', '/v1/registry/export_formats')).data;
  return formatsCache;
}

function keyPart(s) {
  return String(s).replace(/[^a-z0-9_]/gi, '_');
}

export function formatHelp(f) {
  const k = `export_format.${keyPart(f.name)}`;
  return has(k) ? t(k) : f.description;
}

export function optionHelp(f, o) {
  const k = `export_option.${keyPart(f.name)}.${keyPart(o.name)}`;
  return has(k) ? t(k) : o.description;
}

// {"dtype": "bf16"} -> "dtype=bf16", as text.
export function optionsText(options) {
  const e = Object.entries(options || {});
  return e.length ? e.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ') : t('export.defaults');
}

// An export's progress: the newest "export" progress line among its events
// (the trainer's stage, file and bytes: ft/events.h), else the export's own
// "progress" (the same line, kept by the scheduler).
export function exportProgress(ex, events) {
  const ev = (events || []).find((e) => e.type === 'metrics' && e.data && e.data.type === 'export');
  return (ev && ev.data) || ex.progress || null;
}

export function stageText(p) {
  if (!p || !p.stage) return '';
  const k = `export.stage_${keyPart(p.stage)}`;
  return has(k) ? t(k) : p.stage;
}

export function progressCell(ex, p) {
  p = p === undefined ? ex.progress : p;
  if (ex.status === 'succeeded') {
    return h('div', { class: 'progress' }, h('progress', { max: 1, value: 1, 'aria-label': t('export.progress') }),
      ex.artifact ? h('span', { class: 'label' }, t('export.stored', { bytes: fmtBytes(ex.artifact.bytes) })) : null);
  }
  if (!p || !EXPORT_ACTIVE.includes(ex.status)) return h('span', { class: 'muted' }, '—');
  const total = Number(p.total_bytes) || 0;
  const parts = [stageText(p)];
  if (p.file) parts.push(p.file);
  if (total) parts.push(t('export.bytes_of', { done: fmtBytes(p.done_bytes), total: fmtBytes(total) }));
  return h('div', { class: 'progress' },
    total ? h('progress', { max: total, value: Number(p.done_bytes) || 0, 'aria-label': t('export.progress') })
      : h('progress', { 'aria-label': t('export.progress') }),
    h('span', { class: 'label' }, parts.join(' · ')));
}

export function exportsTable(rows, withModel) {
  return table([
    { label: t('export.id'), cell: (e) => h('a', { href: `#/exports/${encodeURIComponent(e.id)}`, class: 'mono break' }, e.id) },
    withModel ? { label: t('export.model'), cell: (e) => versionLink(e.model, e.version) } : null,
    { label: t('export.format'), cell: (e) => h('code', {}, e.format) },
    { label: t('export.options'), cell: (e) => h('span', { class: 'break' }, optionsText(e.options)) },
    { label: t('export.status'), cell: (e) => badge(e.status) },
    { label: t('export.progress'), cell: (e) => progressCell(e) },
    { label: t('export.size'), num: true, cell: (e) => (e.artifact ? fmtBytes(e.artifact.bytes) : '—') },
    { label: t('export.created'), cell: (e) => fmtTime(e.created_at) },
  ].filter(Boolean), rows, { empty: t('export.none'), caption: t('export.list') });
}
