// playground.js - chat with a ready deployment, or with two side by side
// (a base against a fine-tuned version, one version against another).
// The browser talks only to ft-api (the CSP's connect-src 'self'):
// POST /v1/deployments/{id}/chat/completions sends the chat to the
// deployment's endpoint with the endpoint's sealed credential and streams
// the answer back as it comes (docs/api.md); each piece is shown as it
// arrives. Each side keeps its own conversation.

import { listAll, streamChat } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, t } from '../i18n.js';
import { errorBox, field, loading, notice } from '../ui.js';

const SIDES = ['a', 'b'];

export function mount(root, ctx) {
  const body = h('div', {}, loading());
  replace(root, h('h1', {}, t('play.title')), h('p', { class: 'help' }, t('play.intro')), body);

  listAll('/v1/deployments', { status: 'ready' }).then((deps) => {
    const choices = deps.flatMap((d) => d.served_names.map((n) => ({ dep: d.id, name: n, label: `${n} · ${d.endpoint.name}` })));
    if (!choices.length) {
      replace(body, notice(t('play.none'), 'info'), h('p', {}, h('a', { href: '#/deployments' }, t('play.to_deployments'))));
      return;
    }
    const sel = {};
    const convo = {};
    const history = { a: [], b: [] };
    for (const s of SIDES) {
      sel[s] = h('select', { id: uid(`side-${s}`), dataset: { side: s } },
        s === 'b' ? h('option', { value: '' }, t('play.side_none')) : null,
        choices.map((c, i) => h('option', { value: String(i), selected: s === 'a' && i === 0 }, c.label)));
      convo[s] = h('div', { class: 'convo', dataset: { conversation: s }, 'aria-live': 'polite' });
    }
    const system = h('textarea', { id: uid('system'), rows: 2 });
    const prompt = h('textarea', { id: uid('prompt'), rows: 3, required: true });
    const maxTokens = h('input', { type: 'number', id: uid('max'), min: 1, max: 4096, value: 64 });
    const temperature = h('input', { type: 'number', id: uid('temp'), min: 0, max: 2, step: 0.1, value: 0 });
    const msg = h('div', { 'aria-live': 'assertive' });
    const send = h('button', { type: 'submit', class: 'primary' }, t('play.send'));
    const clearBtn = h('button', { type: 'button' }, t('play.clear'));

    const turn = (role, text) => h('div', { class: `turn ${role}` }, h('span', { class: 'role' }, t('play.you')), text);

    async function ask(s, text) {
      const c = choices[Number(sel[s].value)];
      history[s].push({ role: 'user', content: text });
      convo[s].append(turn('user', text));
      const wait = h('p', { class: 'muted', 'aria-busy': 'true' }, t('play.waiting'));
      convo[s].append(wait);
      const messages = (system.value.trim() ? [{ role: 'system', content: system.value.trim() }] : []).concat(history[s]);
      const text_ = h('span', { dataset: { text: '' } });
      const usage = h('div', { class: 'muted small' });
      const box = h('div', { class: 'turn assistant', dataset: { answer: s, done: 'false' } }, h('span', { class: 'role' }, c.name), text_, usage);
      let answer = '';
      try {
        const r = await streamChat(c.dep, {
          model: c.name, messages, max_tokens: Number(maxTokens.value) || 64, temperature: Number(temperature.value) || 0,
        }, (piece) => {
          if (!answer) wait.replaceWith(box);
          answer += piece;
          text_.textContent = answer;
        });
        if (!answer) wait.replaceWith(box);
        history[s].push({ role: 'assistant', content: answer });
        usage.textContent = t('play.usage', {
          prompt: fmtInt(r.usage && r.usage.prompt_tokens), completion: fmtInt(r.usage && r.usage.completion_tokens),
          finish: r.finish || '—',
        });
        box.dataset.done = 'true';
      } catch (e) {
        history[s].pop();
        (box.isConnected ? box : wait).replaceWith(errorBox(e));
      }
    }

    const form = h('form', { class: 'panel', dataset: { write: 'chat' } },
      h('div', { class: 'grid2' }, field(t('play.side_a'), sel.a), field(t('play.side_b'), sel.b, t('play.side_b_help'))),
      field(t('play.system'), system),
      field(t('play.prompt'), prompt),
      h('div', { class: 'grid2' }, field(t('play.max_tokens'), maxTokens), field(t('play.temperature'), temperature)),
      msg, h('div', { class: 'row' }, send, clearBtn));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      const text = prompt.value.trim();
      if (!text) return;
      prompt.value = '';
      send.disabled = true;
      try {
        await Promise.all(SIDES.filter((s) => sel[s].value !== '').map((s) => ask(s, text)));
      } finally {
        send.disabled = false;
        prompt.focus();
      }
    });
    const reset = () => { for (const s of SIDES) { history[s] = []; replace(convo[s]); } };
    clearBtn.addEventListener('click', reset);
    for (const s of SIDES) sel[s].addEventListener('change', () => { history[s] = []; replace(convo[s]); });
    replace(body, form, h('div', { class: 'grid2' }, SIDES.map((s) => h('section', { 'aria-label': t(`play.side_${s}`) },
      h('h2', {}, t(`play.side_${s}`)), convo[s]))));
  }).catch((e) => replace(body, errorBox(e)));
}
