// drift.js - the team's drift monitors (docs/evaluation.md, "Drift
// monitors"): one per deployment, with its state (collecting the reference,
// ok, alert); members put a monitor on a live deployment.

import { api, listAll } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, fmtTime, t } from '../i18n.js';
import { badge, errorBox, field, loading, table, toast } from '../ui.js';

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const msg = h('div', { 'aria-live': 'assertive' });
  const depSel = h('select', { id: uid('dep'), required: true });
  let deps = [];

  async function load() {
    try {
      const [mons, all] = await Promise.all([api('GET', '/v1/drift'), listAll('/v1/deployments')]);
      deps = all.filter((d) => d.status !== 'stopped');
      const byId = new Map(all.map((d) => [d.id, d]));
      const watched = new Set(mons.data.map((m) => m.deployment_id));
      replace(depSel, deps.filter((d) => !watched.has(d.id)).map((d) => h('option', { value: d.id }, `${d.model} · ${d.endpoint.name}`)));
      replace(list, table([
        { label: t('drift.deployment'), cell: (m) => h('a', { href: `#/drift/${m.deployment_id}`, class: 'break' },
          byId.has(m.deployment_id) ? byId.get(m.deployment_id).model : m.deployment_id) },
        { label: t('drift.status'), cell: (m) => h('span', { dataset: { monitor: m.deployment_id } }, badge(m.status)) },
        { label: t('drift.reference_requests'), num: true, cell: (m) => fmtInt(m.reference_requests) },
        { label: t('drift.alert_since'), cell: (m) => fmtTime(m.alert_since) },
        { label: t('drift.updated'), cell: (m) => h('span', { class: 'nowrap' }, fmtTime(m.updated_at)) },
      ], mons.data.map((m) => ({ ...m, id: m.deployment_id })), { empty: t('drift.none'), caption: t('drift.title') }));
    } catch (e) { replace(list, errorBox(e)); }
  }

  let form = null;
  if (ctx.can('member')) {
    const ref = h('input', { type: 'number', id: uid('ref'), min: 50, max: 100000, placeholder: '500' });
    form = h('form', { class: 'panel', dataset: { write: 'create-monitor' } }, h('h2', {}, t('drift.create')),
      h('div', { class: 'grid2' }, field(t('drift.deployment'), depSel), field(t('drift.reference_requests'), ref, t('drift.reference_help'))),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('drift.create'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      const body = {};
      if (ref.value) body.reference_requests = Number(ref.value);
      try {
        await api('POST', `/v1/drift/${encodeURIComponent(depSel.value)}`, body);
        toast(t('drift.saved'));
        ctx.go(`#/drift/${depSel.value}`);
      } catch (err) { replace(msg, errorBox(err)); }
    });
  }
  replace(root, h('h1', {}, t('drift.title')), h('p', { class: 'help' }, t('drift.intro')), msg, form, list);
  load();
}
