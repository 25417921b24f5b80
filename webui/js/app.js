// app.js - the console's entry point: messages, the signed-in caller
// (GET /v1/me), the header (navigation from the page table, language
// switch, sign-out) and the hash router that mounts one page at a time.
//
// A page module exports mount(root, ctx) and may return a cleanup function
// (stop polling, close a stream), called before the next page mounts.
// ctx: {params, query, me, can(role), go(hash), title(text), remount()}.

import { api, clearKey, getKey, setUnauthorizedHandler } from './api.js';
import { h, replace } from './dom.js';
import { getLang, initI18n, LANGS, setLang, t } from './i18n.js';
import { match, pages, roleAtLeast } from './pages.js';
import { errorBox, loading } from './ui.js';

const state = { me: null, cleanup: null, seq: 0 };
const $ = (id) => document.getElementById(id);

export function can(role) {
  return Boolean(state.me) && roleAtLeast(state.me.role, role);
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function loadMe() {
  state.me = null;
  if (!getKey()) return;
  try {
    state.me = await api('GET', '/v1/me');
  } catch (e) {
    state.me = null;
    if (e.status !== 401) throw e;
  }
}

function renderChrome(current) {
  const nav = $('nav');
  const items = [];
  let group = null;
  for (const p of pages) {
    if (!p.nav || !state.me || !can(p.role)) continue;
    if (group !== null && (p.group || '') !== group) items.push(h('span', { class: 'sep', 'aria-hidden': 'true' }));
    group = p.group || '';
    const here = current && (current.path === p.path || current.parent === p.path);
    items.push(h('a', { href: `#/${p.path}`, 'aria-current': here ? 'page' : null, dataset: { nav: p.path } }, t(p.nav)));
  }
  replace(nav, items);
  nav.setAttribute('aria-label', t('nav.label'));
  $('menu-toggle').hidden = !state.me;
  $('menu-label').textContent = t('nav.menu');
  $('skip').textContent = t('nav.skip');
  $('brand').setAttribute('href', state.me ? '#/jobs' : '#/signin');

  const other = LANGS.find((l) => l !== getLang());
  const langBtn = h('button', { type: 'button', lang: other === 'zh' ? 'zh-CN' : 'en', dataset: { lang: other },
    'aria-label': t('lang.switch_label') }, t(`lang.${other}`));
  langBtn.addEventListener('click', () => {
    setLang(other);
    route();
  });
  const parts = [langBtn];
  if (state.me) {
    const who = h('span', { class: 'who', dataset: { role: state.me.role } },
      `${state.me.team.name} · ${t(`role.${state.me.role}`)}`);
    const out = h('button', { type: 'button', dataset: { action: 'signout' } }, t('signin.signout'));
    out.addEventListener('click', () => {
      clearKey();
      state.me = null;
      go('#/signin');
    });
    parts.unshift(who);
    parts.push(out);
  }
  replace($('session'), parts);
}

async function route() {
  const seq = ++state.seq;
  if (state.cleanup) {
    try { state.cleanup(); } catch (e) { /* a page's cleanup must not stop the next one */ }
    state.cleanup = null;
  }
  document.querySelector('.top').classList.remove('open');
  $('nav').classList.remove('open');
  $('menu-toggle').setAttribute('aria-expanded', 'false');
  const main = $('main');
  let m = match(location.hash);
  if (getKey() && !state.me) {
    replace(main, loading());
    try { await loadMe(); } catch (e) { replace(main, errorBox(e)); return; }
    if (seq !== state.seq) return;
  }
  if (!state.me && (!m || !m.page.public)) {
    const next = m ? location.hash : '';
    location.replace(`#/signin${next ? `?next=${encodeURIComponent(next)}` : ''}`);
    return;
  }
  if (!m || (state.me && m.page.public)) {
    location.replace('#/jobs');
    return;
  }
  renderChrome(m.page);
  document.title = `${t(m.page.title)} · ftplat`;
  if (!m.page.public && !can(m.page.role)) {
    replace(main, h('h1', {}, t(m.page.title)), h('p', { class: 'notice warn' }, t('common.not_allowed', { role: t(`role.${m.page.role}`) })));
    return;
  }
  replace(main, loading());
  const root = h('div', { class: 'page', dataset: { page: m.page.path } });
  try {
    const mod = await import(m.page.module);
    if (seq !== state.seq) return;
    replace(main, root);
    const ctx = {
      params: m.params, query: m.query, me: state.me, can, go,
      title: (text) => { document.title = `${text} · ftplat`; },
      remount: () => route(),
      signedIn: async () => { await loadMe(); },
    };
    const cleanup = await mod.mount(root, ctx);
    if (seq !== state.seq) {
      if (typeof cleanup === 'function') cleanup();
      return;
    }
    state.cleanup = typeof cleanup === 'function' ? cleanup : null;
  } catch (e) {
    if (seq === state.seq) replace(main, errorBox(e));
  }
}

async function boot() {
  setUnauthorizedHandler(() => {
    clearKey();
    state.me = null;
    if (!location.hash.startsWith('#/signin')) go('#/signin');
  });
  await initI18n();
  $('skip').addEventListener('click', () => $('main').focus());
  $('menu-toggle').addEventListener('click', () => {
    const open = !$('nav').classList.contains('open');
    $('nav').classList.toggle('open', open);
    document.querySelector('.top').classList.toggle('open', open);
    $('menu-toggle').setAttribute('aria-expanded', String(open));
  });
  window.addEventListener('hashchange', route);
  await route();
}

boot().catch((e) => replace($('main'), errorBox(e)));
