// regmodel.js - one registered model: its versions (each with where it came
// from and its final metrics), its aliases and every change to them.
//
// Moving an alias asks once more, naming the move ("Move production from 1
// to 2?"), and is conditional: it sends the version the page shows as
// "expect_version", so a move someone else made meanwhile is refused (409
// alias_moved) instead of overwritten; the page then shows the new state.
// A protected alias is moved, removed or unprotected by an admin only; for
// other roles its row says so and has no controls (the API refuses anyway).

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, fmtNum, fmtTime, t } from '../i18n.js';
import { aliasChips, confirmButton, errorBox, field, loading, table, toast } from '../ui.js';
import { versionLink } from '../registry.js';

export function mount(root, ctx) {
  const name = ctx.params.name;
  const base = `/v1/registry/models/${encodeURIComponent(name)}`;
  let model = null;
  let versions = [];
  const head = h('div');
  const err = h('div', { 'aria-live': 'assertive' });
  const versionsBox = h('div', {}, loading());
  const aliasesBox = h('div', {}, loading());
  const historyBox = h('div', {}, loading());

  function drawHead() {
    ctx.title(model.name);
    const actions = [];
    if (ctx.can('admin') && model.versions === 0) {
      actions.push(confirmButton(t('regmodel.delete'), t('regmodel.delete_confirm'), async () => {
        try {
          await api('DELETE', base);
          toast(t('regmodel.deleted', { name: model.name }));
          ctx.go('#/registry');
        } catch (e) { replace(err, errorBox(e)); }
      }, { dataset: { write: 'delete-registered-model' } }));
    }
    const tags = Object.entries(model.tags || {});
    let edit = null;
    if (ctx.can('member')) {
      const ta = h('textarea', { id: uid('desc'), maxlength: 4096, rows: 3, value: model.description });
      const save = h('button', { type: 'submit', class: 'primary' }, t('common.save'));
      edit = h('details', { dataset: { write: 'edit-description' } }, h('summary', {}, t('regmodel.edit_description')),
        h('form', {}, field(t('registry.description'), ta), h('div', { class: 'row' }, save)));
      edit.querySelector('form').addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          model = await api('POST', base, { description: ta.value });
          toast(t('common.saved'));
          drawHead();
        } catch (x) { replace(err, errorBox(x)); }
      });
    }
    replace(head, h('div', { class: 'row' }, h('h1', { class: 'grow break' }, model.name), actions),
      model.description ? h('p', { class: 'pre-line', dataset: { description: '' } }, model.description) : h('p', { class: 'muted' }, t('regmodel.no_description')),
      tags.length ? h('p', { class: 'chips' }, tags.map(([k, v]) => h('span', { class: 'chip' }, `${k}: ${v}`))) : null,
      h('p', { class: 'muted small' }, t('regmodel.summary', { n: fmtInt(model.versions), created: fmtTime(model.created_at) })),
      edit);
  }

  function metric(v, k) {
    const m = (v.lineage && v.lineage.metrics) || {};
    return Number.isFinite(m[k]) ? fmtNum(m[k], 4) : '—';
  }

  function drawVersions() {
    replace(versionsBox, table([
      { label: t('regmodel.version'), cell: (v) => versionLink(v.model, v.version) },
      { label: t('regmodel.aliases'), cell: (v) => aliasChips(v.aliases) },
      { label: t('version.kind'), cell: (v) => t(`version.kind_${v.kind}`) },
      { label: t('version.source'), cell: (v) => {
        const l = v.lineage || {};
        if (l.checkpoint) return t('version.from_checkpoint', { step: l.checkpoint.step });
        return l.job ? h('a', { href: `#/jobs/${encodeURIComponent(l.job.id)}`, class: 'mono break' }, l.job.id) : '—';
      } },
      { label: t('version.base_model'), cell: (v) => (v.lineage && v.lineage.base_model ? v.lineage.base_model.name : '—') },
      { label: t('metric.train_loss'), num: true, cell: (v) => metric(v, 'train_loss') },
      { label: t('metric.eval_loss'), num: true, cell: (v) => metric(v, 'eval_loss') },
      { label: t('registry.description'), cell: (v) => (v.description ? h('span', { class: 'pre-line', dataset: { description: '' } }, v.description) : '—') },
      { label: t('version.created'), cell: (v) => fmtTime(v.created_at) },
    ], versions.map((v) => ({ ...v, id: v.version })), { empty: t('regmodel.no_versions'), caption: t('regmodel.versions') }));
  }

  function versionSelect(current, attrs = {}) {
    return h('select', attrs, versions.map((v) => h('option', { value: v.version, selected: v.version === current }, `${name}/${v.version}`)));
  }

  function aliasActions(a) {
    if (!ctx.can('member')) return '';
    if (a.protected && !ctx.can('admin')) return h('span', { class: 'muted small' }, t('alias.protected_admin_only'));
    const sel = versionSelect(a.version, { id: uid('to'), 'aria-label': t('alias.move_to', { alias: a.alias }), dataset: { moveTo: a.alias } });
    const move = confirmButton(t('alias.move'), () => t('alias.move_confirm', { alias: a.alias, from: a.version, to: sel.value }), async () => {
      const to = Number(sel.value);
      if (to === a.version) return;
      try {
        await api('POST', `${base}/aliases/${encodeURIComponent(a.alias)}`, { version: to, expect_version: a.version });
        toast(t('alias.moved', { alias: a.alias, to: `${name}/${to}` }));
      } catch (e) { replace(err, errorBox(e)); }
      loadAll();
    }, { class: 'primary', disabled: true, dataset: { write: 'move-alias', alias: a.alias } });
    sel.addEventListener('change', () => { move.disabled = Number(sel.value) === a.version; });
    const remove = confirmButton(t('alias.remove'), t('alias.remove_confirm', { alias: a.alias }), async () => {
      try {
        await api('DELETE', `${base}/aliases/${encodeURIComponent(a.alias)}`);
        toast(t('alias.removed', { alias: a.alias }));
      } catch (e) { replace(err, errorBox(e)); }
      loadAll();
    }, { dataset: { write: 'remove-alias', alias: a.alias } });
    const parts = [sel, move, remove];
    if (ctx.can('admin')) {
      const p = h('button', { type: 'button', dataset: { write: 'protect-alias', alias: a.alias } }, a.protected ? t('alias.unprotect') : t('alias.protect'));
      p.addEventListener('click', async () => {
        p.disabled = true;
        try {
          await api('POST', `${base}/aliases/${encodeURIComponent(a.alias)}`, { version: a.version, expect_version: a.version, protected: !a.protected });
        } catch (e) { replace(err, errorBox(e)); }
        loadAll();
      });
      parts.push(p);
    }
    return h('div', { class: 'row' }, parts);
  }

  function aliasForm() {
    if (!ctx.can('member') || !versions.length) return null;
    const alias = h('input', { type: 'text', id: uid('alias'), maxlength: 64, required: true, autocomplete: 'off', placeholder: 'production' });
    const ver = versionSelect(versions[0].version, { id: uid('ver') });
    const prot = ctx.can('admin') ? h('input', { type: 'checkbox', id: uid('prot') }) : null;
    const form = h('form', { class: 'panel', dataset: { write: 'set-alias' } }, h('h3', {}, t('alias.add')),
      h('div', { class: 'grid2' }, field(t('alias.name'), alias, t('alias.name_help')), field(t('alias.version'), ver)),
      prot ? h('label', { class: 'inline' }, prot, t('alias.protected_help')) : null,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('alias.add'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(err);
      const body = { version: Number(ver.value), expect_version: 0 };
      if (prot && prot.checked) body.protected = true;
      try {
        await api('POST', `${base}/aliases/${encodeURIComponent(alias.value.trim())}`, body);
        toast(t('alias.moved', { alias: alias.value.trim(), to: `${name}/${ver.value}` }));
        loadAll();
      } catch (x) { replace(err, errorBox(x)); }
    });
    return form;
  }

  function drawAliases(aliases) {
    replace(aliasesBox, table([
      { label: t('alias.name'), cell: (a) => h('span', { class: 'chip', dataset: { alias: a.alias } }, a.alias) },
      { label: t('alias.version'), cell: (a) => h('span', { dataset: { aliasVersion: a.alias } }, versionLink(name, a.version)) },
      { label: t('alias.protected'), cell: (a) => (a.protected ? h('span', { class: 'badge warn', dataset: { protected: a.alias } }, t('alias.protected')) : t('common.no')) },
      { label: t('alias.updated'), cell: (a) => fmtTime(a.updated_at) },
      { label: '', cell: (a) => aliasActions(a) },
    ], aliases.map((a) => ({ ...a, id: a.alias })), { empty: t('alias.none'), caption: t('regmodel.aliases') }),
    h('p', { class: 'muted small' }, t('alias.latest_note')), aliasForm());
  }

  function drawHistory(rows) {
    const v = (n) => (n === null || n === undefined ? '—' : versionLink(name, n));
    replace(historyBox, table([
      { label: t('alias.when'), cell: (c) => fmtTime(c.created_at) },
      { label: t('alias.name'), cell: (c) => c.alias },
      { label: t('alias.action'), cell: (c) => h('span', { dataset: { change: c.action } }, t(`alias.action_${c.action}`)) },
      { label: t('alias.from'), cell: (c) => v(c.from_version) },
      { label: t('alias.to'), cell: (c) => v(c.to_version) },
      { label: t('alias.key'), cell: (c) => (c.key_id ? h('span', { class: 'mono' }, c.key_id) : '—') },
    ], rows, { empty: t('alias.no_history'), caption: t('regmodel.history') }));
  }

  async function loadAll() {
    try {
      const [m, vs, as, hist] = await Promise.all([
        api('GET', base),
        api('GET', `${base}/versions`, null, { limit: 100 }),
        api('GET', `${base}/aliases`),
        api('GET', `${base}/alias_history`, null, { limit: 100 })]);
      model = m;
      versions = vs.data;
      drawHead();
      drawVersions();
      drawAliases(as.data);
      drawHistory(hist.data);
    } catch (e) {
      if (!model) replace(root, errorBox(e));
      else replace(err, errorBox(e));
    }
  }

  replace(root, head, err, h('h2', {}, t('regmodel.versions')), versionsBox,
    h('h2', {}, t('regmodel.aliases')), aliasesBox, h('h2', {}, t('regmodel.history')), historyBox,
    h('p', {}, h('a', { href: '#/registry' }, t('regmodel.back'))));
  loadAll();
}
