// registry.js - the model registry (docs/registry.md): the team's
// registered models with their versions and aliases, the bytes it stores
// and its recent exports. Members add a registered model (a name to
// promote checkpoints into; jobs create theirs as they succeed).

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtBytes, fmtInt, fmtTime, t } from '../i18n.js';
import { errorBox, field, loading, stat, table, toast } from '../ui.js';
import { exportsTable, modelHref, versionLink } from '../registry.js';

const PAGE = 50;

// {"production": 2, "staging": 3} -> chips "production → 2".
function aliasMap(name, aliases) {
  const e = Object.entries(aliases || {}).sort(([a], [b]) => (a < b ? -1 : 1));
  if (!e.length) return '—';
  return h('span', { class: 'chips' }, e.map(([a, v]) => h('a', { class: 'chip', href: modelHref(name, v), dataset: { alias: a } }, `${a} → ${v}`)));
}

export function mount(root, ctx) {
  let rows = [];
  let lastId = null;
  const list = h('div', {}, loading());
  const usage = h('div', { class: 'cards spaced' });
  const exportsBox = h('div', {}, loading());
  const moreBtn = h('button', { type: 'button', hidden: true }, t('common.load_more'));

  function draw() {
    replace(list, table([
      { label: t('registry.name'), cell: (m) => h('a', { href: modelHref(m.name), class: 'ref' }, m.name) },
      { label: t('registry.description'), cell: (m) => (m.description ? h('span', { class: 'pre-line', dataset: { description: '' } }, m.description) : '—') },
      { label: t('registry.versions'), num: true, cell: (m) => fmtInt(m.versions) },
      { label: t('registry.latest'), cell: (m) => (m.latest_version ? versionLink(m.name, m.latest_version) : '—') },
      { label: t('registry.aliases'), cell: (m) => aliasMap(m.name, m.aliases) },
      { label: t('registry.updated'), cell: (m) => fmtTime(m.updated_at) },
    ], rows, { empty: t('registry.none'), caption: t('registry.title') }));
  }

  async function load(after) {
    try {
      const r = await api('GET', '/v1/registry/models', null, { limit: PAGE, after });
      rows = after ? rows.concat(r.data) : r.data;
      lastId = r.last_id;
      moreBtn.hidden = !r.has_more;
      draw();
    } catch (e) { replace(list, errorBox(e)); }
  }
  moreBtn.addEventListener('click', () => load(lastId));

  let form = null;
  if (ctx.can('member')) {
    const name = h('input', { type: 'text', id: uid('rm-name'), maxlength: 128, required: true, autocomplete: 'off' });
    const desc = h('textarea', { id: uid('rm-desc'), maxlength: 4096, rows: 2 });
    const msg = h('div', { 'aria-live': 'assertive' });
    form = h('form', { class: 'panel', dataset: { write: 'create-registered-model' } },
      h('h2', {}, t('registry.create')),
      h('div', { class: 'grid2' }, field(t('registry.name'), name, t('registry.name_help')), field(t('registry.description'), desc)),
      msg, h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('registry.create'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      try {
        const m = await api('POST', '/v1/registry/models', { name: name.value.trim(), description: desc.value || null });
        toast(t('registry.created', { name: m.name }));
        ctx.go(modelHref(m.name));
      } catch (err) { replace(msg, errorBox(err)); }
    });
  }

  replace(root, h('h1', {}, t('registry.title')), h('p', { class: 'muted' }, t('registry.intro')),
    usage, list, h('div', { class: 'row' }, moreBtn),
    h('h2', {}, t('registry.recent_exports')), exportsBox, form);
  load(null);
  api('GET', '/v1/registry/usage').then((u) => {
    replace(usage, stat(t('registry.stored'), fmtBytes(u.stored_bytes)),
      stat(t('registry.quota'), u.quota_bytes === null ? t('registry.no_quota') : fmtBytes(u.quota_bytes)));
  }).catch((e) => replace(usage, errorBox(e)));
  api('GET', '/v1/registry/exports', null, { limit: 10 }).then((r) => {
    replace(exportsBox, exportsTable(r.data, true));
  }).catch((e) => replace(exportsBox, errorBox(e)));
}
