// evals.js - the team's offline evaluations (docs/evaluation.md, "Offline
// evaluations"): name, status, models, when; members start one from an
// uploaded conversation file (each row's last assistant message is the
// reference), 1 to 8 models (base models or registry references) and the
// options of ft/evaluate.h.

import { api, listAll } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtTime, t } from '../i18n.js';
import { badge, errorBox, field, loading, table, toast } from '../ui.js';

const MAX_MODELS = 8;

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const msg = h('div', { 'aria-live': 'assertive' });

  async function load() {
    try {
      const rows = await listAll('/v1/evals');
      replace(list, table([
        { label: t('eval.name'), cell: (e) => h('a', { href: `#/evals/${e.id}`, class: 'break' }, e.name || e.id) },
        { label: t('eval.status'), cell: (e) => badge(e.status) },
        { label: t('eval.models'), cell: (e) => h('span', { class: 'break' }, e.models.map((m) => m.model).join(' · ')) },
        { label: t('eval.created'), cell: (e) => h('span', { class: 'nowrap' }, fmtTime(e.created_at)) },
        { label: t('eval.finished'), cell: (e) => h('span', { class: 'nowrap' }, fmtTime(e.finished_at)) },
      ], rows, { empty: t('eval.none'), caption: t('eval.title') }));
    } catch (e) { replace(list, errorBox(e)); }
  }

  let form = null;
  if (ctx.can('member')) {
    const name = h('input', { type: 'text', id: uid('name'), maxlength: 256, autocomplete: 'off' });
    const file = h('select', { id: uid('file'), required: true }, h('option', { value: '' }, t('eval.file_choose')));
    const models = h('textarea', { id: uid('models'), rows: 3, required: true, placeholder: 'ftplat-tiny-cs\nsupport-bot@production' });
    const maxNew = h('input', { type: 'number', id: uid('maxnew'), min: 1, max: 4096, value: 128 });
    const maxRows = h('input', { type: 'number', id: uid('maxrows'), min: 1, placeholder: t('eval.all_rows') });
    const rouge = h('select', { id: uid('rouge') }, ['default', 'cjk'].map((v) => h('option', { value: v }, v)));
    const bleu = h('select', { id: uid('bleu') }, ['13a', 'zh'].map((v) => h('option', { value: v }, v)));
    listAll('/v1/files').then((files) => {
      for (const f of files.filter((x) => x.purpose !== 'batch')) file.append(h('option', { value: f.id }, `${f.filename} (${f.id})`));
    }).catch((e) => replace(msg, errorBox(e)));
    form = h('form', { class: 'panel', dataset: { write: 'create-eval' } }, h('h2', {}, t('eval.create')),
      h('p', { class: 'help' }, t('eval.create_help')),
      h('div', { class: 'grid2' }, field(t('eval.name'), name), field(t('eval.file'), file, t('eval.file_help'))),
      field(t('eval.models'), models, t('eval.models_help', { n: MAX_MODELS })),
      h('div', { class: 'grid2' }, field(t('eval.max_new_tokens'), maxNew), field(t('eval.max_rows'), maxRows),
        field(t('eval.rouge_tokenizer'), rouge), field(t('eval.bleu_tokenizer'), bleu)),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('eval.create'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      const options = { max_new_tokens: Number(maxNew.value), rouge_tokenizer: rouge.value, bleu_tokenizer: bleu.value };
      if (maxRows.value) options.max_rows = Number(maxRows.value);
      const body = {
        file: file.value,
        models: models.value.split('\n').map((s) => s.trim()).filter(Boolean),
        options,
      };
      if (name.value.trim()) body.name = name.value.trim();
      try {
        const x = await api('POST', '/v1/evals', body);
        toast(t('eval.created_ok'));
        ctx.go(`#/evals/${x.id}`);
      } catch (err) { replace(msg, errorBox(err)); }
    });
  }
  replace(root, h('h1', {}, t('eval.title')), msg, form, list);
  load();
}
