// keys.js - the team's API keys (admin): create one (shown once), revoke.

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, fmtTime, t } from '../i18n.js';
import { confirmButton, errorBox, field, loading, secretBox, table, toast } from '../ui.js';

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const created = h('div');
  const msg = h('div', { 'aria-live': 'assertive' });

  async function load() {
    try {
      const r = await api('GET', '/v1/keys', null, { limit: 100 });
      replace(list, table([
        { label: t('keys.name'), cell: (k) => k.name || '—' },
        { label: t('keys.prefix'), cell: (k) => h('code', {}, k.prefix) },
        { label: t('keys.role'), cell: (k) => t(`role.${k.role}`) },
        { label: t('keys.rate_limit'), num: true, cell: (k) => fmtInt(k.rate_limit_per_min) },
        { label: t('keys.last_used'), cell: (k) => fmtTime(k.last_used_at) },
        { label: t('keys.expires'), cell: (k) => fmtTime(k.expires_at) },
        { label: t('keys.state'), cell: (k) => (k.revoked_at ? t('keys.revoked_at', { at: fmtTime(k.revoked_at) }) : t('keys.active')) },
        { label: '', cell: (k) => (k.revoked_at || k.id === ctx.me.key_id ? '' : confirmButton(t('keys.revoke'), t('keys.revoke_confirm'), async () => {
          try { await api('DELETE', `/v1/keys/${k.id}`); toast(t('keys.revoked')); load(); } catch (e) { replace(msg, errorBox(e)); }
        }, { dataset: { write: 'revoke' } })) },
      ], r.data, { caption: t('keys.title') }));
    } catch (e) { replace(list, errorBox(e)); }
  }

  const name = h('input', { type: 'text', id: uid('name'), maxlength: 128 });
  const role = h('select', { id: uid('role') }, ['viewer', 'member', 'admin'].map((r) => h('option', { value: r, selected: r === 'member' }, t(`role.${r}`))));
  const rate = h('input', { type: 'number', id: uid('rate'), min: 1, max: 1000000, placeholder: '600' });
  const expires = h('input', { type: 'date', id: uid('expires') });
  const form = h('form', { class: 'panel', dataset: { write: 'create-key' } }, h('h2', {}, t('keys.create')),
    h('div', { class: 'grid2' }, field(t('keys.name'), name), field(t('keys.role'), role, t('keys.role_help')),
      field(t('keys.rate_limit'), rate), field(t('keys.expires'), expires)),
    msg, h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('keys.create'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(msg);
    const b = { name: name.value || null, role: role.value };
    if (rate.value) b.rate_limit_per_min = Number(rate.value);
    if (expires.value) b.expires_at = Math.floor(new Date(`${expires.value}T23:59:59`).getTime() / 1000);
    try {
      const k = await api('POST', '/v1/keys', b);
      replace(created, secretBox(t('keys.new_key'), k.key));
      form.reset();
      load();
    } catch (err) { replace(msg, errorBox(err)); }
  });
  replace(root, h('h1', {}, t('keys.title')), created, form, list);
  load();
}
