// dataset.js - one dataset: its validation report (every error with its
// line), statistics, and the first examples rendered as conversations.
// Polls while the file is still being validated.

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { fmtTime, t } from '../i18n.js';
import { datasetReport, errorBox, facts, loading } from '../ui.js';

export function mount(root, ctx) {
  const id = ctx.params.id;
  let timer = null;
  async function load() {
    let ds;
    try {
      ds = await api('GET', `/v1/datasets/${id}`);
    } catch (e) {
      replace(root, errorBox(e));
      return;
    }
    ctx.title(ds.name);
    const use = ctx.can('member') && ds.status === 'valid'
      ? h('a', { class: 'button primary', href: `#/new?dataset=${encodeURIComponent(ds.id)}`, dataset: { write: 'use-dataset' } }, t('dataset.use'))
      : null;
    replace(root, h('div', { class: 'row' }, h('h1', { class: 'grow' }, ds.name), use),
      h('div', { class: 'panel' }, facts([
        [t('dataset.id'), h('span', { class: 'mono break' }, ds.id)],
        [t('dataset.file'), h('span', { class: 'mono break' }, ds.file_id)],
        [t('datasets.created'), fmtTime(ds.created_at)],
        [t('dataset.validated'), fmtTime(ds.validated_at)],
      ])),
      datasetReport(ds));
    if (ds.status === 'validating') timer = setTimeout(load, 700);
  }
  replace(root, loading());
  load();
  return () => clearTimeout(timer);
}
