// monitor.js - the drift monitor of one deployment: its state, settings and
// thresholds, the latest hourly and daily windows (each metric against the
// reference, and which crossed its threshold), the windows of one
// granularity; members set it (a changed reference size, or reset, starts
// it over) and remove it. A deployment with no monitor shows the form only
// (the list is read first, so no request is answered 404).

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, fmtNum, fmtTime, t } from '../i18n.js';
import { badge, confirmButton, errorBox, facts, field, loading, notice, table, toast } from '../ui.js';

const POLL_MS = 5000;
const METRICS = ['prompt_tokens', 'completion_tokens', 'truncated', 'refusals', 'languages', 'byte_pieces', 'embeddings'];

const pct = (x) => (Number.isFinite(Number(x)) && x !== null ? `${fmtNum(100 * x, 1)} %` : '—');
// a p-value: three decimals, or two significant digits once below 0.001
// (where three decimals would read 0 and the alerting ones all live)
const fmtP = (p) => (p === null || p === undefined || !Number.isFinite(Number(p)) ? '—'
  : (Number(p) > 0 && Number(p) < 0.001 ? Number(p).toExponential(1) : fmtNum(p, 3)));

// One metric of a window: what it measured now, in the reference, and its statistic.
function metricRow(name, m) {
  if (!m) return { id: name, name, now: '—', ref: '—', stat: '—', alert: false };
  if (m.error) return { id: name, name, now: m.error, ref: '—', stat: '—', alert: false };
  if ('mean' in m) return { id: name, name, now: fmtNum(m.mean, 3), ref: fmtNum(m.reference_mean, 3), stat: `PSI ${fmtNum(m.psi, 3)} · KS p ${fmtP(m.ks_pvalue)}`, alert: m.alert };
  if (m.too_few) return { id: name, name, now: fmtInt(m.n), ref: fmtInt(m.reference_n), stat: t('drift.too_few_embeddings'), alert: false };
  if ('auc' in m) return { id: name, name, now: `cos ${fmtNum(m.cosine, 3)}`, ref: '—', stat: `AUC ${fmtNum(m.auc, 3)} · p ${fmtP(m.pvalue)}`, alert: m.alert };
  if ('rate' in m) return { id: name, name, now: pct(m.rate), ref: pct(m.reference_rate), stat: `p ${fmtP(m.pvalue)}`, alert: m.alert };
  const mix = (x) => Object.entries(x || {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${pct(v)}`).join(' · ') || '—';
  return { id: name, name, now: mix(m.mix), ref: mix(m.reference_mix), stat: `JS ${fmtNum(m.js, 3)} · p ${fmtP(m.pvalue)}`, alert: m.alert };
}

function windowBox(w, gran) {
  const title = h('h3', {}, t(`drift.latest_${gran}`));
  if (!w) return h('div', { class: 'panel', dataset: { window: gran } }, title, h('p', { class: 'muted' }, t('drift.no_window')));
  const m = w.metrics || {};
  return h('div', { class: 'panel', dataset: { window: gran, alert: String(w.alert) } }, title,
    h('p', { class: 'small' }, `${fmtTime(w.window_start)} – ${fmtTime(w.window_end)} · `, t('drift.requests_n', { n: fmtInt(w.n_requests) }), ' ',
      w.alert ? badge('alert') : badge('ok')),
    m.too_few_requests ? h('p', { class: 'muted small' }, t('drift.too_few')) : table([
      { label: t('drift.metric'), cell: (r) => t(`drift.metric_${r.name}`) },
      { label: t('drift.now'), cell: (r) => r.now },
      { label: t('drift.reference'), cell: (r) => r.ref },
      { label: t('drift.statistic'), cell: (r) => h('span', { class: 'small' }, r.stat) },
      { label: t('drift.alert'), cell: (r) => (r.alert ? badge('alert') : '') },
    ], METRICS.map((k) => metricRow(k, m[k])), { caption: t(`drift.latest_${gran}`) }));
}

export function mount(root, ctx) {
  const id = ctx.params.id;
  const head = h('div', {}, h('h1', { class: 'break' }, t('drift.title_one')), h('p', { class: 'muted mono break' }, id));
  const body = h('div');
  const msg = h('div', { 'aria-live': 'assertive' });
  const winBox = h('div');
  const gran = h('select', { id: uid('gran') }, ['hour', 'day'].map((g) => h('option', { value: g }, t(`drift.gran_${g}`))));
  let mon = null;

  async function loadWindows() {
    if (!mon) { replace(winBox); return; }
    try {
      const r = await api('GET', `/v1/drift/${encodeURIComponent(id)}/windows`, null, { granularity: gran.value, limit: 48 });
      replace(winBox, table([
        { label: t('drift.window'), cell: (w) => h('span', { class: 'nowrap' }, fmtTime(w.window_start)) },
        { label: t('drift.requests'), num: true, cell: (w) => h('span', { dataset: { n: '' } }, fmtInt(w.n_requests)) },
        { label: t('drift.prompt_psi'), num: true, cell: (w) => h('span', { dataset: { psi: '' } }, fmtNum(((w.metrics || {}).prompt_tokens || {}).psi, 3)) },
        { label: t('drift.prompt_ks_p'), num: true, cell: (w) => h('span', { dataset: { ksP: '' } }, fmtP(((w.metrics || {}).prompt_tokens || {}).ks_pvalue)) },
        { label: t('drift.refusal_rate'), num: true, cell: (w) => h('span', { dataset: { refusals: '' } }, pct(((w.metrics || {}).refusals || {}).rate)) },
        { label: t('drift.alert'), cell: (w) => (w.alert ? badge('alert') : badge('ok')) },
        { label: t('drift.alerts'), cell: (w) => (w.alerts || []).map((a) => t(`drift.metric_${a}`)).join(', ') || '—' },
      ], r.data.map((w) => ({ ...w, id: `${w.granularity}-${w.window_start}` })), { empty: t('drift.no_window'), caption: t('drift.windows') }));
    } catch (e) { replace(winBox, errorBox(e)); }
  }

  function settings() {
    if (!ctx.can('member')) return null;
    const ref = h('input', { type: 'number', id: uid('ref'), min: 50, max: 100000, value: mon ? mon.reference_requests : '' });
    const minw = h('input', { type: 'number', id: uid('minw'), min: 10, max: 100000, value: mon ? mon.min_window_requests : '' });
    const form = h('form', { class: 'panel', dataset: { write: 'set-monitor' } }, h('h2', {}, mon ? t('drift.change') : t('drift.create')),
      h('div', { class: 'grid2' }, field(t('drift.reference_requests'), ref, t('drift.reference_help')),
        field(t('drift.min_window_requests'), minw)),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('drift.save')),
        mon ? h('button', { type: 'button', dataset: { write: 'reset-monitor' }, on: { click: () => save({ reset: true }) } }, t('drift.reset')) : null,
        mon ? confirmButton(t('drift.delete'), t('drift.delete_confirm'), async () => {
          try { await api('DELETE', `/v1/drift/${encodeURIComponent(id)}`); toast(t('drift.deleted')); ctx.go('#/drift'); } catch (e) { replace(msg, errorBox(e)); }
        }, { dataset: { write: 'delete-monitor' } }) : null));
    async function save(extra) {
      replace(msg);
      const b = { ...extra };
      if (ref.value) b.reference_requests = Number(ref.value);
      if (minw.value) b.min_window_requests = Number(minw.value);
      try { await api('POST', `/v1/drift/${encodeURIComponent(id)}`, b); toast(t('drift.saved')); load(true); } catch (e) { replace(msg, errorBox(e)); }
    }
    form.addEventListener('submit', (e) => { e.preventDefault(); save({}); });
    return form;
  }

  // parts redrawn by the poll; the form only when the monitor comes or goes
  // (or after a save), so what is being typed keeps its focus
  const info = h('div');
  const formBox = h('div');
  const winSection = h('div', { hidden: true }, h('h2', {}, t('drift.windows')),
    h('div', { class: 'toolbar' }, field(t('drift.granularity'), gran)), winBox);
  replace(body, info, formBox, winSection);
  let first = true;

  async function load(redrawForm) {
    try {
      const all = await api('GET', '/v1/drift');
      const had = Boolean(mon);
      mon = all.data.some((m) => m.deployment_id === id) ? await api('GET', `/v1/drift/${encodeURIComponent(id)}`) : null;
      if (first || redrawForm || had !== Boolean(mon)) replace(formBox, settings());
      first = false;
      winSection.hidden = !mon;
      if (!mon) {
        replace(info, notice(t('drift.no_monitor'), 'info'));
        replace(winBox);
        return;
      }
      const th = Object.entries(mon.thresholds || {});
      replace(info, h('div', { class: 'row' }, h('span', { dataset: { monitorStatus: mon.status } }, badge(mon.status)),
        mon.alert_since ? h('span', { class: 'muted small' }, t('drift.alert_since'), ' ', fmtTime(mon.alert_since)) : null),
      h('div', { class: 'panel' }, facts([
        [t('drift.deployment'), h('a', { href: '#/deployments', class: 'mono break' }, mon.deployment_id)],
        [t('drift.reference_requests'), fmtInt(mon.reference_requests)],
        [t('drift.min_window_requests'), fmtInt(mon.min_window_requests)],
        [t('drift.reference_end'), fmtTime(mon.reference && mon.reference.end)],
        [t('drift.thresholds'), th.length ? th.map(([k, v]) => `${k} ${fmtNum(v)}`).join(' · ') : '—'],
      ])),
      h('div', { class: 'grid2' }, windowBox(mon.latest && mon.latest.hour, 'hour'), windowBox(mon.latest && mon.latest.day, 'day')));
      loadWindows();
    } catch (e) { replace(info, errorBox(e)); }
  }

  gran.addEventListener('change', loadWindows);
  replace(root, head, msg, body);
  replace(info, loading());
  load(true);
  const timer = setInterval(() => { if (!document.hidden) load(false); }, POLL_MS);
  return () => clearInterval(timer);
}
