// signin.js - sign in with an API key. The key is checked with GET /v1/me
// and kept in sessionStorage only (api.js); nothing is sent anywhere else.

import { api, setKey } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { errorBox } from '../ui.js';

export function mount(root, ctx) {
  const input = h('input', { type: 'password', id: uid('key'), name: 'key', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'ftk-…', 'aria-describedby': 'key-help' });
  const msg = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'primary' }, t('signin.submit'));
  const form = h('form', { class: 'panel', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: input.id }, t('signin.key')), input,
      h('div', { class: 'help', id: 'key-help' }, t('signin.key_help'))),
    msg, h('div', { class: 'row' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) {
      replace(msg, errorBox({ message: t('signin.key_missing') }));
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api('GET', '/v1/me', null, null, { key });
      setKey(key);
      await ctx.signedIn();
      const next = ctx.query.get('next');
      ctx.go(next && next.startsWith('#/') && !next.startsWith('#/signin') ? next : '#/jobs');
    } catch (err) {
      replace(msg, errorBox(err.status === 401 ? { message: t('signin.rejected') } : err));
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('section', { class: 'signin' },
    h('h1', {}, t('signin.title')), h('p', { class: 'muted' }, t('signin.intro')), form));
  input.focus();
}
