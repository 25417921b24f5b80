// jobs.js - the team's fine-tuning jobs: status, progress, ETA, filters.
// The first page is polled every few seconds while the tab is visible;
// "Load more" appends older pages. Filters apply to the jobs loaded.

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtDuration, fmtTime, t } from '../i18n.js';
import { ACTIVE, badge, errorBox, jobProgress, loading, progressBar, table } from '../ui.js';

const POLL_MS = 3000;
const PAGE = 50;

export function jobName(j) {
  return j.user_provided_suffix ? j.user_provided_suffix : j.id;
}

export function eta(j) {
  if (!ACTIVE.includes(j.state) || !j.estimated_finish) return '—';
  return fmtDuration(j.estimated_finish - Date.now() / 1000);
}

export function mount(root, ctx) {
  const jobs = new Map(); // id -> job, in the order of arrival
  let more = false;
  let lastId = null;
  const status = h('select', { id: uid('status') },
    ['all', 'active', ...ACTIVE.filter((s) => s !== 'dispatched'), 'paused', 'succeeded', 'failed', 'cancelled']
      .map((s) => h('option', { value: s }, s === 'all' || s === 'active' ? t(`jobs.filter_${s}`) : t(`state.${s}`))));
  const model = h('select', { id: uid('model') }, h('option', { value: '' }, t('jobs.filter_any_model')));
  const search = h('input', { type: 'search', id: uid('search'), placeholder: t('jobs.search_placeholder') });
  const list = h('div', {}, loading());
  const moreBtn = h('button', { type: 'button', hidden: true }, t('common.load_more'));
  const err = h('div');

  const toolbar = h('div', { class: 'toolbar' },
    h('div', { class: 'field' }, h('label', { for: status.id }, t('jobs.filter_status')), status),
    h('div', { class: 'field' }, h('label', { for: model.id }, t('jobs.filter_model')), model),
    h('div', { class: 'field grow' }, h('label', { for: search.id }, t('jobs.search')), search),
    ctx.can('member') ? h('a', { class: 'button primary', href: '#/new', dataset: { write: 'new-job' } }, t('jobs.new')) : null);

  function visible(j) {
    const s = status.value;
    if (s === 'active' && !ACTIVE.includes(j.state)) return false;
    if (s !== 'all' && s !== 'active' && j.state !== s && !(s === 'queued' && j.state === 'dispatched')) return false;
    if (model.value && j.model !== model.value) return false;
    const q = search.value.trim().toLowerCase();
    if (q && !`${j.id} ${j.user_provided_suffix || ''} ${j.model}`.toLowerCase().includes(q)) return false;
    return true;
  }

  function draw() {
    const models = [...new Set([...jobs.values()].map((j) => j.model))].sort();
    const have = [...model.options].map((o) => o.value);
    for (const m of models) if (!have.includes(m)) model.append(h('option', { value: m }, m));
    const rows = [...jobs.values()].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1)).filter(visible);
    replace(list, table([
      { label: t('jobs.col_job'), cell: (j) => h('a', { href: `#/jobs/${j.id}`, class: 'break' }, jobName(j)) },
      { label: t('jobs.col_model'), cell: (j) => j.model },
      { label: t('jobs.col_method'), cell: (j) => `${t(`method.${j.method.type}`)} · ${t(`adapter.${j.adapter}`)}` },
      { label: t('jobs.col_status'), cell: (j) => badge(j.state) },
      { label: t('jobs.col_progress'), cell: (j) => progressBar(jobProgress(j)) },
      { label: t('jobs.col_eta'), cell: (j) => eta(j) },
      { label: t('jobs.col_created'), cell: (j) => h('span', { class: 'nowrap' }, fmtTime(j.created_at)) },
    ], rows, { empty: jobs.size ? t('jobs.none_match') : t('jobs.none'), caption: t('jobs.title') }));
    moreBtn.hidden = !more;
  }

  async function refresh() {
    try {
      const r = await api('GET', '/v1/fine_tuning/jobs', null, { limit: PAGE });
      for (const j of r.data) jobs.set(j.id, j);
      if (lastId === null) { more = r.has_more; lastId = r.last_id; }
      replace(err);
      draw();
    } catch (e) {
      replace(err, errorBox(e));
    }
  }

  moreBtn.addEventListener('click', async () => {
    moreBtn.disabled = true;
    try {
      const r = await api('GET', '/v1/fine_tuning/jobs', null, { limit: PAGE, after: lastId });
      for (const j of r.data) jobs.set(j.id, j);
      more = r.has_more;
      lastId = r.last_id || lastId;
      draw();
    } catch (e) {
      replace(err, errorBox(e));
    } finally {
      moreBtn.disabled = false;
    }
  });
  for (const c of [status, model]) c.addEventListener('change', draw);
  search.addEventListener('input', draw);

  replace(root, h('h1', {}, t('jobs.title')), toolbar, err, list, h('div', { class: 'row' }, moreBtn));
  refresh();
  const timer = setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  return () => clearInterval(timer);
}
