// keys.js - the team's API keys (admin): create one (shown once), change a
// key's name, rate limit or expiry, revoke.

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, fmtTime, t } from '../i18n.js';
import { confirmButton, errorBox, field, loading, secretBox, table, toast } from '../ui.js';

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const created = h('div');
  const msg = h('div', { 'aria-live': 'assertive' });
  const editBox = h('div');

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
        { label: '', cell: (k) => (k.revoked_at ? '' : h('button', { type: 'button', dataset: { write: 'edit-key', id: k.id }, on: { click: () => edit(k) } }, t('keys.edit'))) },
        { label: '', cell: (k) => (k.revoked_at || k.id === ctx.me.key_id ? '' : confirmButton(t('keys.revoke'), t('keys.revoke_confirm'), async () => {
          try { await api('DELETE', `/v1/keys/${k.id}`); toast(t('keys.revoked')); load(); } catch (e) { replace(msg, errorBox(e)); }
        }, { dataset: { write: 'revoke' } })) },
      ], r.data, { caption: t('keys.title') }));
    } catch (e) { replace(list, errorBox(e)); }
  }

  // The end of a chosen day, local time (what the create form sends too).
  const endOfDay = (d) => Math.floor(new Date(`${d}T23:59:59`).getTime() / 1000);
  const dateOf = (ts) => {
    const d = new Date(ts * 1000);
    const p2 = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}`;
  };

  // A key's form: what POST /v1/keys/{id} changes. An expiry left as it
  // was is not sent (it keeps its exact time); an emptied one removes it.
  function edit(k) {
    const en = h('input', { type: 'text', id: uid('ename'), maxlength: 128, value: k.name || '' });
    const er = h('input', { type: 'number', id: uid('erate'), min: 1, max: 1000000, required: true, value: k.rate_limit_per_min });
    const was = k.expires_at ? dateOf(k.expires_at) : '';
    const ee = h('input', { type: 'date', id: uid('eexpires'), value: was });
    const emsg = h('div', { 'aria-live': 'assertive' });
    const f = h('form', { class: 'panel', dataset: { write: 'update-key' } }, h('h2', {}, t('keys.edit_title', { prefix: k.prefix })),
      h('div', { class: 'grid2' }, field(t('keys.name'), en), field(t('keys.rate_limit'), er),
        field(t('keys.expires'), ee, t('keys.expires_help'))),
      emsg, h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('common.save')),
        h('button', { type: 'button', on: { click: () => replace(editBox) } }, t('keys.edit_close'))));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(emsg);
      const b = { name: en.value, rate_limit_per_min: Number(er.value) };
      if (ee.value !== was) b.expires_at = ee.value ? endOfDay(ee.value) : 0;
      try {
        await api('POST', `/v1/keys/${k.id}`, b);
        toast(t('common.saved'));
        replace(editBox);
        load();
      } catch (err) { replace(emsg, errorBox(err)); }
    });
    replace(editBox, f);
    en.focus();
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
    if (expires.value) b.expires_at = endOfDay(expires.value);
    try {
      const k = await api('POST', '/v1/keys', b);
      replace(created, secretBox(t('keys.new_key'), k.key));
      form.reset();
      load();
    } catch (err) { replace(msg, errorBox(err)); }
  });
  replace(root, h('h1', {}, t('keys.title')), created, form, editBox, list);
  load();
}
