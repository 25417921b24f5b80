// datasets.js - the team's datasets with their validation outcome; members
// upload a new one here (the file is validated as it lands).

import { api, uploadFile } from '../api.js';
import { h, replace } from '../dom.js';
import { fmtBytes, fmtInt, fmtTime, t } from '../i18n.js';
import { badge, errorBox, filePicker, loading, table } from '../ui.js';

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const err = h('div', { 'aria-live': 'assertive' });
  let rows = [];
  let lastId = null;
  let more = false;
  const moreBtn = h('button', { type: 'button', hidden: true }, t('common.load_more'));

  function draw() {
    replace(list, table([
      { label: t('datasets.name'), cell: (d) => h('a', { href: `#/datasets/${d.id}`, class: 'break' }, d.name) },
      { label: t('datasets.format'), cell: (d) => d.format || '—' },
      { label: t('datasets.status'), cell: (d) => badge(d.status) },
      { label: t('datasets.examples'), num: true, cell: (d) => fmtInt(d.report && d.report.n_examples) },
      { label: t('datasets.errors'), num: true, cell: (d) => fmtInt(d.report && d.report.n_errors) },
      { label: t('datasets.approx_tokens'), num: true, cell: (d) => fmtInt(d.stats && d.stats.approx_tokens) },
      { label: t('datasets.created'), cell: (d) => fmtTime(d.created_at) },
    ], rows, { empty: t('datasets.none'), caption: t('datasets.title') }));
    moreBtn.hidden = !more;
  }

  async function load(after) {
    try {
      const r = await api('GET', '/v1/datasets', null, { limit: 50, after });
      rows = after ? rows.concat(r.data) : r.data;
      more = r.has_more;
      lastId = r.last_id;
      draw();
    } catch (e) { replace(list, errorBox(e)); }
  }
  moreBtn.addEventListener('click', () => load(lastId));

  let uploader = null;
  if (ctx.can('member')) {
    const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': t('wizard.upload_progress') });
    const text = h('span', { class: 'muted small' });
    const picker = filePicker(t('datasets.upload'), t('common.choose_file'), '.jsonl,.json,.txt', async (f) => {
      replace(err);
      bar.hidden = false;
      try {
        const up = await uploadFile(f, (done, total) => {
          bar.max = total || 1;
          bar.value = done;
          text.textContent = t('wizard.uploaded', { done: fmtBytes(done), total: fmtBytes(total) });
        });
        const ds = await api('POST', '/v1/datasets', { file_id: up.id, name: f.name });
        ctx.go(`#/datasets/${ds.id}`);
      } catch (e) {
        replace(err, errorBox(e));
        bar.hidden = true;
        text.textContent = '';
      }
    });
    uploader = h('div', { class: 'panel', dataset: { write: 'upload' } },
      picker, h('div', { class: 'help' }, t('wizard.upload_help')), h('div', { class: 'row' }, bar, text));
  }
  replace(root, h('h1', {}, t('datasets.title')), uploader, err, list, h('div', { class: 'row' }, moreBtn));
  load(null);
}
