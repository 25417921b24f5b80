// webhook.js - one webhook endpoint's delivery log, newest first, with the
// payload of each; admins send a delivery again ("redeliver").

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { fmtInt, fmtTime, t } from '../i18n.js';
import { badge, errorBox, facts, loading, table, toast } from '../ui.js';

export function mount(root, ctx) {
  const id = ctx.params.id;
  const list = h('div', {}, loading());
  const head = h('div');
  const msg = h('div', { 'aria-live': 'assertive' });
  let rows = [];
  let lastId = null;
  const moreBtn = h('button', { type: 'button', hidden: true }, t('common.load_more'));

  function draw() {
    replace(list, table([
      { label: t('webhook.event'), cell: (d) => h('code', {}, d.event_type) },
      { label: t('webhook.status'), cell: (d) => badge(d.status) },
      { label: t('webhook.attempts'), num: true, cell: (d) => fmtInt(d.attempts) },
      { label: t('webhook.last_code'), num: true, cell: (d) => (d.last_status_code === null ? '—' : String(d.last_status_code)) },
      { label: t('webhook.last_error'), cell: (d) => d.last_error || '—' },
      { label: t('webhook.created'), cell: (d) => fmtTime(d.created_at) },
      { label: t('webhook.next_attempt'), cell: (d) => fmtTime(d.next_attempt_at) },
      { label: t('webhook.delivered'), cell: (d) => fmtTime(d.delivered_at) },
      { label: t('webhook.payload'), cell: (d) => h('details', {}, h('summary', {}, t('webhook.show')), h('pre', {}, JSON.stringify(d.payload, null, 2))) },
      { label: '', cell: (d) => (ctx.can('admin') ? h('button', { type: 'button', dataset: { write: 'redeliver' }, on: { click: async (e) => {
        e.target.disabled = true;
        try { await api('POST', `/v1/webhooks/${id}/deliveries/${d.id}/redeliver`); toast(t('webhook.redelivered')); load(null); } catch (x) { replace(msg, errorBox(x)); e.target.disabled = false; }
      } } }, t('webhook.redeliver')) : '') },
    ], rows, { empty: t('webhook.none'), caption: t('webhook.title') }));
  }

  async function load(after) {
    try {
      const r = await api('GET', `/v1/webhooks/${id}/deliveries`, null, { limit: 50, after });
      rows = after ? rows.concat(r.data) : r.data;
      lastId = r.last_id;
      moreBtn.hidden = !r.has_more;
      draw();
    } catch (e) { replace(list, errorBox(e)); }
  }
  moreBtn.addEventListener('click', () => load(lastId));

  replace(root, head, msg, h('h2', {}, t('webhook.deliveries')), list, h('div', { class: 'row' }, moreBtn));
  api('GET', `/v1/webhooks/${id}`).then((w) => {
    ctx.title(w.url);
    replace(head, h('h1', { class: 'break' }, w.url), h('div', { class: 'panel' }, facts([
      [t('webhook.id'), h('span', { class: 'mono' }, w.id)],
      [t('webhooks.events'), w.events.join(', ')],
      [t('webhooks.enabled'), w.enabled ? t('common.yes') : `${t('common.no')}${w.disabled_reason ? ` (${w.disabled_reason})` : ''}`],
      [t('webhooks.created'), fmtTime(w.created_at)],
    ])));
  }).catch((e) => replace(head, errorBox(e)));
  load(null);
}
