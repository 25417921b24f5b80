// webhooks.js - endpoints that receive signed events (admins add, rotate
// and delete them; every key may look). Deliveries: webhook.js.

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtTime, t } from '../i18n.js';
import { confirmButton, errorBox, field, loading, secretBox, table, toast } from '../ui.js';

// The events an endpoint can ask for: the schema's enum in the served spec.
async function eventTypes() {
  const doc = await api('GET', '/v1/openapi.json');
  return doc.components.schemas.WebhookCreate.properties.events.items.enum;
}

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const shown = h('div');
  const msg = h('div', { 'aria-live': 'assertive' });
  const admin = ctx.can('admin');

  async function load() {
    try {
      const r = await api('GET', '/v1/webhooks', null, { limit: 100 });
      replace(list, table([
        { label: t('webhooks.url'), cell: (w) => h('a', { href: `#/admin/webhooks/${w.id}`, class: 'break' }, w.url) },
        { label: t('webhooks.events'), cell: (w) => w.events.join(', ') },
        { label: t('webhooks.enabled'), cell: (w) => (w.enabled ? t('common.yes') : `${t('common.no')}${w.disabled_reason ? ` (${w.disabled_reason})` : ''}`) },
        { label: t('webhooks.created'), cell: (w) => fmtTime(w.created_at) },
        { label: '', cell: (w) => (admin ? h('div', { class: 'row' },
          h('button', { type: 'button', dataset: { write: 'rotate' }, on: { click: async () => {
            try { const x = await api('POST', `/v1/webhooks/${w.id}/rotate_secret`); replace(shown, secretBox(t('webhooks.new_secret'), x.secret)); } catch (e) { replace(msg, errorBox(e)); }
          } } }, t('webhooks.rotate')),
          confirmButton(t('webhooks.delete'), t('webhooks.delete_confirm'), async () => {
            try { await api('DELETE', `/v1/webhooks/${w.id}`); toast(t('webhooks.deleted')); load(); } catch (e) { replace(msg, errorBox(e)); }
          }, { dataset: { write: 'delete' } })) : '') },
      ], r.data, { empty: t('webhooks.none'), caption: t('webhooks.title') }));
    } catch (e) { replace(list, errorBox(e)); }
  }

  let form = null;
  if (admin) {
    const url = h('input', { type: 'url', id: uid('url'), required: true, placeholder: 'https://example.com/ftplat' });
    const boxes = h('div', {}, loading());
    form = h('form', { class: 'panel', dataset: { write: 'create-webhook' } }, h('h2', {}, t('webhooks.create')),
      field(t('webhooks.url'), url, t('webhooks.url_help')),
      h('fieldset', {}, h('legend', {}, t('webhooks.events')), boxes), msg,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('webhooks.create'))));
    eventTypes().then((types) => replace(boxes, types.map((ev) => h('label', { class: 'inline' },
      h('input', { type: 'checkbox', name: 'events', value: ev, checked: ev.startsWith('fine_tuning.') }), ev))))
      .catch((e) => replace(boxes, errorBox(e)));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      const events = [...form.querySelectorAll('input[name=events]:checked')].map((c) => c.value);
      try {
        const w = await api('POST', '/v1/webhooks', { url: url.value.trim(), events });
        replace(shown, secretBox(t('webhooks.secret'), w.secret));
        form.reset();
        load();
      } catch (err) { replace(msg, errorBox(err)); }
    });
  }
  replace(root, h('h1', {}, t('webhooks.title')), shown, form, list);
  load();
}
