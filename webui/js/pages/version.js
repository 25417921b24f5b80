// version.js - one model version (GET /v1/registry/models/{name}/versions/
// {version}: a number, an alias or "latest"): its lineage drawn from the
// data and the base model through the job to the version, its description
// and tags, the hyperparameters it was trained with (as the trainer
// resolved them), its final metrics, the statistics of its data, its own
// files, and its exports. Members continue training from it (the wizard,
// with the version as the model), export it, describe it and delete it.
//
// The export form is built from GET /v1/registry/export_formats: the
// formats that take this kind of version, each option as a control of its
// type (a choice: a select whose first entry is the default; an integer: a
// number field with its range), so a format or an option added to
// ft/exports.h appears here without a change.

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtBytes, fmtInt, fmtNum, fmtTime, t } from '../i18n.js';
import { aliasChips, badge, confirmButton, errorBox, facts, field, filesTable, loading, notice, shortSha, table, toast } from '../ui.js';
import { exportFormats, exportsTable, formatHelp, modelHref, optionHelp, versionLink } from '../registry.js';
import { jobName } from './jobs.js';

// {"lora": {"r": 16}, "seed": 1} -> [["lora.r", 16], ["seed", 1]]
function flatten(obj, prefix = '') {
  const out = [];
  for (const [k, v] of Object.entries(obj || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v, `${prefix}${k}.`));
    else out.push([`${prefix}${k}`, Array.isArray(v) ? v.join(', ') : v]);
  }
  return out;
}

function valueText(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : fmtNum(v, 6);
  if (v === null || v === undefined) return '—';
  return String(v);
}

function node(kind, main, sub, here) {
  return h('div', { class: `node${here ? ' here' : ''}`, dataset: { lineage: kind } },
    h('span', { class: 'k' }, t(`lineage.${kind}`)), h('span', { class: 'v' }, main), sub ? h('span', { class: 'sub' }, sub) : null);
}

export function mount(root, ctx) {
  const name = ctx.params.name;
  const which = ctx.params.version;
  let v = null;
  const err = h('div', { 'aria-live': 'assertive' });

  function lineage() {
    const l = v.lineage || {};
    const inputs = [];
    if (l.base_model) inputs.push(node('base_model', h('a', { href: '#/models' }, l.base_model.name), shortSha(l.base_model.sha256)));
    if (l.parent_version) inputs.push(node('parent_version', versionLink(l.parent_version.model, l.parent_version.version)));
    if (l.dataset) {
      const a = h('a', { href: `#/datasets/${encodeURIComponent(l.dataset)}`, class: 'break', dataset: { dataset: l.dataset } }, l.dataset);
      api('GET', `/v1/datasets/${encodeURIComponent(l.dataset)}`).then((d) => { a.textContent = d.name; }).catch(() => {});
      inputs.push(node('dataset', a));
    }
    if (l.training_file) inputs.push(node('training_file', h('span', { class: 'mono break' }, l.training_file.id), shortSha(l.training_file.sha256)));
    if (l.validation_file) inputs.push(node('validation_file', h('span', { class: 'mono break' }, l.validation_file.id), shortSha(l.validation_file.sha256)));
    const chain = [h('li', {}, h('div', { class: 'inputs' }, inputs))];
    if (l.job) {
      const a = h('a', { href: `#/jobs/${encodeURIComponent(l.job.id)}`, class: 'break', dataset: { job: l.job.id } }, l.job.id);
      api('GET', `/v1/fine_tuning/jobs/${encodeURIComponent(l.job.id)}`).then((j) => { a.textContent = jobName(j); }).catch(() => {});
      chain.push(h('li', {}, node('job', a, `${t(`method.${l.method}`)} · ${t(`adapter.${l.adapter}`)} · ${t('lineage.attempt', { n: l.job.attempt })}`)));
    }
    if (l.checkpoint) chain.push(h('li', {}, node('checkpoint', t('version.from_checkpoint', { step: l.checkpoint.step }))));
    chain.push(h('li', {}, node('version', v.ref, shortSha(v.artifact && v.artifact.sha256), true)));
    return h('ol', { class: 'lineage', 'aria-label': t('version.lineage') }, chain);
  }

  function dataStats() {
    const s = (v.lineage && v.lineage.dataset_stats) || {};
    const rows = Object.entries(s).filter(([, x]) => x && typeof x === 'object').map(([k, x]) => ({ id: k, k, ...x, st: x.stats || {} }));
    return table([
      { label: t('version.data'), cell: (r) => t(`lineage.${r.k}`) },
      { label: t('datasets.format'), cell: (r) => r.format || '—' },
      { label: t('datasets.examples'), num: true, cell: (r) => fmtInt(r.n_examples) },
      { label: t('version.tokens_total'), num: true, cell: (r) => fmtInt(r.st.tokens_total) },
      { label: t('version.tokens_trained'), num: true, cell: (r) => fmtInt(r.st.tokens_trained) },
      { label: t('version.max_len'), num: true, cell: (r) => fmtInt(r.st.max_len) },
      { label: t('version.rows_truncated'), num: true, cell: (r) => fmtInt(r.st.rows_truncated) },
    ], rows, { empty: t('version.no_stats'), caption: t('version.data_stats') });
  }

  function editBox() {
    if (!ctx.can('member')) return null;
    const ta = h('textarea', { id: uid('desc'), maxlength: 4096, rows: 3, value: v.description });
    const form = h('form', {}, field(t('registry.description'), ta), h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('common.save'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api('POST', `/v1/registry/models/${encodeURIComponent(v.model)}/versions/${v.version}`, { description: ta.value });
        toast(t('common.saved'));
        load();
      } catch (x) { replace(err, errorBox(x)); }
    });
    return h('details', { dataset: { write: 'edit-description' } }, h('summary', {}, t('version.edit_description')), form);
  }

  // The export form: formats and options from the API's table.
  function exportForm(formats) {
    if (!ctx.can('member')) return null;
    const takes = v.kind === 'adapter' ? 'adapter' : 'model';
    const usable = formats.filter((f) => f.versions.includes(takes));
    if (!usable.length) return notice(t('export.no_format'));
    const sel = h('select', { id: uid('format'), dataset: { field: 'format' } }, usable.map((f) => h('option', { value: f.name }, f.name)));
    const about = h('p', { class: 'help', dataset: { formatHelp: '' } });
    const opts = h('div', { class: 'grid2' });
    const msg = h('div', { 'aria-live': 'assertive' });
    let controls = [];
    const drawOptions = () => {
      const f = usable.find((x) => x.name === sel.value);
      about.textContent = formatHelp(f);
      controls = f.options.map((o) => {
        const id = uid(`opt-${o.name}`);
        let c;
        let range = '';
        if (o.type === 'choice') {
          c = h('select', { id, dataset: { option: o.name } },
            h('option', { value: '' }, t('export.default_is', { v: o.default })),
            (o.choices || []).map((x) => h('option', { value: x }, x)));
        } else {
          c = h('input', { id, type: 'number', step: 1, min: o.minimum, max: o.maximum, inputmode: 'numeric',
            placeholder: t('export.default_is', { v: o.default }), dataset: { option: o.name } });
          if (o.minimum !== undefined && o.maximum !== undefined) range = ` (${fmtInt(o.minimum)} … ${fmtInt(o.maximum)})`;
        }
        return { o, c, el: field(h('code', {}, o.name), c, `${optionHelp(f, o)}${range}`) };
      });
      replace(opts, controls.map((x) => x.el));
    };
    sel.addEventListener('change', drawOptions);
    drawOptions();
    const submit = h('button', { type: 'submit', class: 'primary' }, t('export.create'));
    const form = h('form', { class: 'panel', dataset: { write: 'create-export' } },
      h('h3', {}, t('export.create')), field(t('export.format'), sel), about, opts, msg, h('div', { class: 'row' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      const options = {};
      for (const { o, c } of controls) {
        if (c.value === '') continue;
        options[o.name] = o.type === 'integer' ? Number(c.value) : c.value;
      }
      submit.disabled = true;
      try {
        const ex = await api('POST', '/v1/registry/exports', { model: v.ref, format: sel.value, options });
        ctx.go(`#/exports/${encodeURIComponent(ex.id)}`);
      } catch (x) {
        replace(msg, errorBox(x));
        submit.disabled = false;
      }
    });
    return form;
  }

  async function load() {
    const base = `/v1/registry/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(which)}`;
    let exports;
    let formats;
    try {
      [v, formats] = await Promise.all([api('GET', base), exportFormats()]);
      exports = (await api('GET', '/v1/registry/exports', null, { model: v.ref, limit: 100 })).data;
    } catch (e) {
      replace(root, errorBox(e));
      return;
    }
    ctx.title(v.ref);
    const l = v.lineage || {};
    const actions = [];
    if (ctx.can('member') && v.kind === 'adapter' && l.job) {
      actions.push(h('a', { class: 'button primary', href: `#/new?from=${encodeURIComponent(l.job.id)}&model=${encodeURIComponent(v.ref)}`, dataset: { write: 'continue' } }, t('version.continue')));
    }
    if (ctx.can('member')) {
      actions.push(confirmButton(t('version.delete'), t('version.delete_confirm', { ref: v.ref }), async () => {
        try {
          await api('DELETE', `/v1/registry/models/${encodeURIComponent(v.model)}/versions/${v.version}`);
          toast(t('version.deleted', { ref: v.ref }));
          ctx.go(modelHref(v.model));
        } catch (e) { replace(err, errorBox(e)); }
      }, { dataset: { write: 'delete-version' } }));
    }
    const tags = Object.entries(v.tags || {});
    const metrics = Object.entries(l.metrics || {}).map(([k, x]) => ({ id: k, k, x }));
    const hp = flatten(l.hyperparameters).map(([k, x]) => ({ id: k, k, x }));
    replace(root,
      h('div', { class: 'row' }, h('h1', { class: 'grow break' }, v.ref), badge(v.status)),
      h('p', {}, h('a', { href: modelHref(v.model) }, t('version.all_versions', { name: v.model })), v.aliases.length ? [' · ', aliasChips(v.aliases)] : null),
      h('div', { class: 'row' }, actions), err,
      v.description ? h('p', { class: 'pre-line', dataset: { description: '' } }, v.description) : null,
      tags.length ? h('p', { class: 'chips' }, tags.map(([k, x]) => h('span', { class: 'chip', dataset: { tag: k } }, `${k}: ${x}`))) : null,
      editBox(),
      h('h2', {}, t('version.lineage')), lineage(),
      h('div', { class: 'panel' }, facts([
        [t('version.id'), h('span', { class: 'mono break' }, v.id)],
        [t('version.kind'), t(`version.kind_${v.kind}`)],
        [t('version.fine_tuned_model'), v.fine_tuned_model ? h('span', { class: 'mono break' }, v.fine_tuned_model) : '—'],
        [t('job.method'), l.method ? t(`method.${l.method}`) : '—'],
        [t('job.adapter'), l.adapter ? t(`adapter.${l.adapter}`) : '—'],
        [t('job.trained_tokens'), fmtInt(l.trained_tokens)],
        [t('version.trainer_version'), l.trainer_version || '—'],
        [t('version.artifact'), v.artifact ? h('span', {}, shortSha(v.artifact.sha256), ` · ${fmtBytes(v.artifact.bytes)}`) : '—'],
        [t('version.created'), fmtTime(v.created_at)],
      ])),
      h('h2', {}, t('version.metrics')),
      table([
        { label: t('job.hp_name'), cell: (r) => h('code', {}, r.k) },
        { label: t('job.hp_value'), num: true, cell: (r) => h('span', { dataset: { metric: r.k } }, valueText(r.x)) },
      ], metrics, { empty: t('version.no_metrics'), caption: t('version.metrics') }),
      h('h2', {}, t('version.hyperparameters')),
      table([
        { label: t('job.hp_name'), cell: (r) => h('code', {}, r.k) },
        { label: t('job.hp_value'), cell: (r) => h('span', { dataset: { hp: r.k } }, valueText(r.x)) },
      ], hp, { caption: t('version.hyperparameters') }),
      h('h2', {}, t('version.data_stats')), dataStats(),
      h('h2', {}, t('version.files')),
      v.artifact ? filesTable(v.artifact.files, t('version.files')) : notice(t('files.none')),
      h('h2', {}, t('version.exports')), exportsTable(exports, false), exportForm(formats));
  }

  replace(root, loading());
  load();
}
