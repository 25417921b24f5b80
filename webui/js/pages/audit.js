// audit.js - the team's audit log (admin): every write and every denial,
// newest first, filtered by action and outcome.

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtTime, t } from '../i18n.js';
import { badge, errorBox, loading, table } from '../ui.js';

export function mount(root) {
  const list = h('div', {}, loading());
  const action = h('input', { type: 'text', id: uid('action'), placeholder: 'jobs.create', maxlength: 64 });
  const outcome = h('select', { id: uid('outcome') }, h('option', { value: '' }, t('audit.any')),
    ['allowed', 'denied'].map((o) => h('option', { value: o }, t(`state.${o}`))));
  const moreBtn = h('button', { type: 'button', hidden: true }, t('common.load_more'));
  let rows = [];
  let lastId = null;

  function draw() {
    replace(list, table([
      { label: t('audit.time'), cell: (e) => h('span', { class: 'nowrap' }, fmtTime(e.created_at)) },
      { label: t('audit.action'), cell: (e) => h('code', {}, e.action) },
      { label: t('audit.outcome'), cell: (e) => badge(e.outcome) },
      { label: t('audit.status'), num: true, cell: (e) => String(e.status_code ?? '—') },
      { label: t('audit.object'), cell: (e) => (e.object_id ? h('span', { class: 'mono break' }, e.object_id) : '—') },
      { label: t('audit.key'), cell: (e) => (e.key_id ? h('span', { class: 'mono break' }, e.key_id) : '—') },
      { label: t('audit.address'), cell: (e) => e.remote_addr || '—' },
    ], rows, { empty: t('audit.none'), caption: t('audit.title') }));
  }

  async function load(after) {
    try {
      const r = await api('GET', '/v1/audit_log', null, { limit: 50, after, action: action.value.trim(), outcome: outcome.value });
      rows = after ? rows.concat(r.data) : r.data;
      lastId = r.last_id;
      moreBtn.hidden = !r.has_more;
      draw();
    } catch (e) { replace(list, errorBox(e)); }
  }
  moreBtn.addEventListener('click', () => load(lastId));
  const form = h('form', { class: 'toolbar' },
    h('div', { class: 'field' }, h('label', { for: action.id }, t('audit.action')), action),
    h('div', { class: 'field' }, h('label', { for: outcome.id }, t('audit.outcome')), outcome),
    h('button', { type: 'submit' }, t('audit.filter')));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(null); });
  outcome.addEventListener('change', () => load(null));
  replace(root, h('h1', {}, t('audit.title')), form, list, h('div', { class: 'row' }, moreBtn));
  load(null);
}
