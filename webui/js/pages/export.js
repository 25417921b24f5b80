// export.js - one export of a model version (docs/registry.md, "Exports"):
// its status and progress (from its events: the trainer's stage, file and
// bytes), options, events, and once it has succeeded the files it wrote,
// each with a download checked against its SHA-256. Polled every second
// while it is not over; members cancel it while it runs.

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { fmtBytes, fmtClock, fmtTime, t } from '../i18n.js';
import { badge, confirmButton, errorBox, facts, filesTable, loading, shortSha, toast } from '../ui.js';
import { EXPORT_ACTIVE, EXPORT_CANCELLABLE, exportProgress, optionsText, progressCell, versionLink } from '../registry.js';

const POLL_MS = 1000;

export function mount(root, ctx) {
  const id = ctx.params.id;
  let ex = null;
  let events = [];
  let timer = null;
  let stopped = false;
  let filesFor = null;
  let cancelBtn = null;
  const head = h('div');
  const err = h('div', { 'aria-live': 'assertive' });
  const progress = h('div', { class: 'panel', dataset: { progress: '' } });
  const details = h('div');
  const filesBox = h('div');
  const evList = h('ol', { class: 'events', reversed: true, 'aria-label': t('export.events') });

  function drawHead() {
    const title = `${ex.model}/${ex.version} · ${ex.format}`;
    ctx.title(`${t('export.title')} ${title}`);
    const actions = [];
    if (ctx.can('member') && EXPORT_CANCELLABLE.includes(ex.status)) {
      cancelBtn = cancelBtn || confirmButton(t('export.cancel'), t('export.cancel_confirm'), async () => {
        try {
          ex = await api('POST', `/v1/registry/exports/${encodeURIComponent(id)}/cancel`);
          toast(t('export.cancel_sent'));
          draw();
        } catch (e) { replace(err, errorBox(e)); }
      }, { dataset: { write: 'cancel-export' } });
      actions.push(cancelBtn);
    }
    replace(head, h('div', { class: 'row' }, h('h1', { class: 'grow' }, t('export.heading', { format: ex.format }), ' ', versionLink(ex.model, ex.version)),
      badge(ex.status)), h('p', { class: 'muted mono break' }, ex.id), h('div', { class: 'row' }, actions));
  }

  function drawProgress() {
    const parts = [progressCell(ex, exportProgress(ex, events))];
    if (ex.error && ex.error.message) parts.push(errorBox({ message: ex.error.message, param: ex.error.param }));
    replace(progress, parts);
  }

  function drawDetails() {
    replace(details, h('div', { class: 'panel' }, facts([
      [t('export.model'), versionLink(ex.model, ex.version)],
      [t('export.format'), h('code', {}, ex.format)],
      [t('export.options'), h('span', { class: 'break', dataset: { options: '' } }, optionsText(ex.options))],
      [t('export.attempt'), `${ex.attempt} / ${ex.max_attempts}`],
      [t('export.worker'), ex.worker || '—'],
      [t('export.created'), fmtTime(ex.created_at)],
      [t('export.started'), fmtTime(ex.started_at)],
      [t('export.finished'), fmtTime(ex.finished_at)],
      [t('export.artifact'), ex.artifact ? h('span', {}, shortSha(ex.artifact.sha256), ` · ${fmtBytes(ex.artifact.bytes)}`) : '—'],
    ])));
  }

  function drawEvents() {
    replace(evList, events.map((ev) => h('li', { class: ev.level, dataset: { type: ev.type } },
      h('time', { datetime: new Date(ev.created_at * 1000).toISOString() }, fmtClock(ev.created_at)),
      h('span', { class: 'muted' }, t(`level.${ev.level}`)), h('span', {}, ev.message))));
  }

  function draw() {
    drawHead();
    drawProgress();
    drawDetails();
    drawEvents();
  }

  async function loadFiles() {
    const art = ex.artifact.id;
    if (filesFor === art) return;
    filesFor = art;
    replace(filesBox, loading());
    try {
      const a = await api('GET', `/v1/registry/artifacts/${encodeURIComponent(art)}`);
      const ref = `${ex.model}/${ex.version}`;
      replace(filesBox, filesTable(a.files, t('export.files')),
        h('p', { class: 'muted small' }, t('files.cli_hint')),
        h('pre', { dataset: { cli: '' } }, `ftctl models download ${ref} --format ${ex.format} -o ${ex.model}-${ex.version}-${ex.format}`));
    } catch (e) {
      filesFor = null;
      replace(filesBox, errorBox(e));
    }
  }

  async function tick() {
    try {
      const [e, ev] = await Promise.all([
        api('GET', `/v1/registry/exports/${encodeURIComponent(id)}`),
        api('GET', `/v1/registry/exports/${encodeURIComponent(id)}/events`, null, { limit: 100 })]);
      if (stopped) return;
      const first = ex === null;
      ex = e;
      events = ev.data;
      if (first) {
        replace(root, head, err, progress,
          h('h2', {}, t('export.files')), filesBox,
          h('h2', {}, t('export.events')), evList,
          h('h2', {}, t('export.details')), details);
      }
      draw();
      if (ex.status === 'succeeded' && ex.artifact) loadFiles();
      else replace(filesBox, h('p', { class: 'muted' }, EXPORT_ACTIVE.includes(ex.status) ? t('export.files_later') : t('export.no_files')));
    } catch (e) {
      if (stopped) return;
      if (ex === null) { replace(root, errorBox(e)); return; }
      replace(err, errorBox(e));
    }
    if (!stopped && EXPORT_ACTIVE.includes(ex.status)) timer = setTimeout(tick, POLL_MS);
  }

  replace(root, loading());
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
