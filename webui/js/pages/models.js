// models.js - the models the team can use, as OpenAI's /v1/models lists
// them: base models (its own and the shared ones), fine-tuned models
// (ft:BASE:JOB, one per model version a job made) and their checkpoints.
// Fine-tuned models and checkpoints link to their version in the registry;
// members delete a fine-tuned model (DELETE /v1/models/{model}: its version,
// refused while an alias or an export needs it); admins register a base
// model folder that is on the server.

import { api, listAll } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtParams, fmtTime, t } from '../i18n.js';
import { confirmButton, errorBox, field, loading, table, toast } from '../ui.js';
import { versionLink } from '../registry.js';

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const msg = h('div', { 'aria-live': 'assertive' });

  function actions(m) {
    if (m.kind !== 'fine-tuned' || !ctx.can('member')) return '';
    return confirmButton(t('models.delete'), t('models.delete_confirm'), async () => {
      try {
        await api('DELETE', `/v1/models/${encodeURIComponent(m.id)}`);
        toast(t('models.deleted', { model: m.id }));
        load();
      } catch (e) { replace(msg, errorBox(e)); }
    }, { dataset: { write: 'delete-model' } });
  }

  async function load() {
    try {
      const rows = await listAll('/v1/models');
      replace(list, table([
        { label: t('models.name'), cell: (m) => h('strong', { class: 'break' }, m.id) },
        { label: t('models.kind'), cell: (m) => t(`models.kind_${(m.kind || 'base').replace('-', '_')}`) },
        { label: t('models.version'), cell: (m) => (m.registered_model && m.version ? versionLink(m.registered_model, m.version) : '—') },
        { label: t('models.description'), cell: (m) => (m.description ? h('span', { dataset: { description: '' } }, m.description) : '—') },
        { label: t('models.architecture'), cell: (m) => m.architecture },
        { label: t('models.parameter_count'), num: true, cell: (m) => fmtParams(m.parameter_count) },
        { label: t('models.owner'), cell: (m) => (m.owned_by === 'system' ? t('models.shared') : t('models.team_only')) },
        { label: t('models.created'), cell: (m) => fmtTime(m.created) },
        { label: '', cell: (m) => actions(m) },
      ], rows.map((m) => ({ ...m, id: m.id })), { empty: t('models.none'), caption: t('models.title') }));
    } catch (e) { replace(list, errorBox(e)); }
  }
  let form = null;
  if (ctx.can('admin')) {
    const name = h('input', { type: 'text', id: uid('name'), maxlength: 256, required: true });
    const path = h('input', { type: 'text', id: uid('path'), required: true, placeholder: '/models/my-model' });
    const desc = h('input', { type: 'text', id: uid('desc'), maxlength: 2000 });
    const fmsg = h('div', { 'aria-live': 'assertive' });
    form = h('form', { class: 'panel', dataset: { write: 'register-model' } },
      h('h2', {}, t('models.register')),
      h('div', { class: 'grid2' }, field(t('models.name'), name), field(t('models.path'), path, t('models.path_help'))),
      field(t('models.description'), desc), fmsg,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('models.register'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(fmsg);
      try {
        await api('POST', '/v1/models', { name: name.value.trim(), path: path.value.trim(), description: desc.value || null });
        toast(t('models.registered'));
        form.reset();
        load();
      } catch (err) { replace(fmsg, errorBox(err)); }
    });
  }
  replace(root, h('h1', {}, t('models.title')), h('p', { class: 'muted' }, t('models.intro')), msg, list, form);
  load();
}
