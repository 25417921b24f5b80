// job.js - one job: live curves (training and evaluation loss, token
// accuracy, learning rate, DPO rewards), events, checkpoints,
// hyperparameters; cancel; the model version it produced (the registry)
// and "continue training": the wizard, prefilled, with that version as the
// model (a job without a version, or with a whole-model one, is trained
// again from its base: "run again").
//
// Everything live comes from the job's event stream (api.js
// streamJobEvents, GET .../events?stream=true): it replays the job's
// events oldest first, then follows new ones, and ends with the job. The
// metrics events carry the trainer's progress lines (docs/trainer.md,
// "Progress lines"): type "step" and type "eval".

import { api, streamJobEvents } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtClock, fmtDuration, fmtInt, fmtNum, fmtTime, t } from '../i18n.js';
import { LineChart } from '../chart.js';
import { ACTIVE, CANCELLABLE, PAUSABLE, RESUMABLE, badge, confirmButton, errorBox, facts, field, jobProgress, loading, progressBar, table, toast } from '../ui.js';
import { eta, jobName } from './jobs.js';
import { refLink, versionLink } from '../registry.js';

const MAX_EVENTS = 500;

// Which chart shows which metric, per method.
function chartsFor(method) {
  const loss = { id: 'loss', caption: t('job.chart_loss'), series: [
    { key: 'train_loss', label: t('metric.train_loss') }, { key: 'eval_loss', label: t('metric.eval_loss') }] };
  const lr = { id: 'lr', caption: t('job.chart_lr'), series: [{ key: 'learning_rate', label: t('metric.learning_rate') }] };
  if (method === 'dpo') {
    return [loss, {
      id: 'rewards', caption: t('job.chart_rewards'), series: [
        { key: 'rewards/chosen', label: t('metric.rewards_chosen') },
        { key: 'rewards/rejected', label: t('metric.rewards_rejected') },
        { key: 'rewards/margins', label: t('metric.rewards_margins') },
        { key: 'eval_rewards/margins', label: t('metric.eval_rewards_margins') }],
    }, {
      id: 'reward_acc', caption: t('job.chart_reward_accuracy'), series: [
        { key: 'rewards/accuracies', label: t('metric.rewards_accuracies') },
        { key: 'eval_rewards/accuracies', label: t('metric.eval_rewards_accuracies') }],
    }, lr];
  }
  return [loss, { id: 'acc', caption: t('job.chart_accuracy'), series: [
    { key: 'eval_token_accuracy', label: t('metric.eval_token_accuracy') }] }, lr];
}

// A checkpoint's metrics besides its step, "name value" each.
function ckMetrics(m) {
  const parts = Object.entries(m || {}).filter(([k, v]) => k !== 'step' && Number.isFinite(v)).map(([k, v]) => `${k} ${fmtNum(v, 4)}`);
  return parts.length ? parts.join(' · ') : '—';
}

export function mount(root, ctx) {
  const id = ctx.params.id;
  let job = null;
  let stop = null;
  let charts = [];
  const live = { step: null, total: null, eta: null, tps: null, loss: null };
  const head = h('div');
  const progress = h('div', { class: 'panel', dataset: { progress: '' } });
  const chartBox = h('div', { class: 'charts' });
  const details = h('div');
  const hpBox = h('div');
  const ckBox = h('div', {}, loading());
  const events = h('ol', { class: 'events', reversed: true, 'aria-label': t('job.events') });
  const err = h('div');

  // The version the job produced ({registered_model, version} of its
  // fine-tuned model, GET /v1/models/{ft:...}), asked once it succeeded.
  let produced = null;
  let askedVersion = false;
  async function findVersion() {
    if (askedVersion || job.state !== 'succeeded' || !job.fine_tuned_model) return;
    askedVersion = true;
    try {
      const m = await api('GET', `/v1/models/${encodeURIComponent(job.fine_tuned_model)}`);
      if (m.registered_model && m.version) {
        produced = { name: m.registered_model, version: m.version };
        drawAll();
      }
    } catch (e) { replace(err, errorBox(e)); }
  }

  // One cancel button for the page's life: a redraw (a status event) while
  // it asks "really?" keeps it asking.
  let cancelBtn = null;
  function drawHead() {
    const actions = [];
    if (ctx.can('member') && CANCELLABLE.includes(job.state)) {
      cancelBtn = cancelBtn || confirmButton(t('job.cancel'), t('job.cancel_confirm'), async () => {
        try {
          job = await api('POST', `/v1/fine_tuning/jobs/${id}/cancel`);
          toast(t('job.cancel_sent'));
          drawAll();
        } catch (e) { replace(err, errorBox(e)); }
      }, { dataset: { write: 'cancel' } });
      actions.push(cancelBtn);
    }
    // pause (the trainer checkpoints and stops) and resume (from that checkpoint)
    for (const [act, states] of [['pause', PAUSABLE], ['resume', RESUMABLE]]) {
      if (!ctx.can('member') || !states.includes(job.state)) continue;
      const b = h('button', { type: 'button', dataset: { write: act } }, t(`job.${act}`));
      b.addEventListener('click', async () => {
        b.disabled = true;
        try {
          job = await api('POST', `/v1/fine_tuning/jobs/${id}/${act}`);
          toast(t(`job.${act}_sent`));
          drawAll();
        } catch (e) { b.disabled = false; replace(err, errorBox(e)); }
      });
      actions.push(b);
    }
    if (ctx.can('member')) {
      if (produced && job.adapter !== 'none') {
        const ref = `${produced.name}/${produced.version}`;
        actions.push(h('a', { class: 'button', href: `#/new?from=${encodeURIComponent(id)}&model=${encodeURIComponent(ref)}`, dataset: { write: 'continue' } }, t('job.continue')));
      } else {
        actions.push(h('a', { class: 'button', href: `#/new?from=${encodeURIComponent(id)}`, dataset: { write: 'run-again' } }, t('job.run_again')));
      }
    }
    replace(head, h('div', { class: 'row' }, h('h1', { class: 'grow' }, jobName(job)), badge(job.state)),
      job.user_provided_suffix ? h('p', { class: 'muted mono' }, job.id) : null,
      produced ? h('p', { dataset: { producedVersion: '' } }, `${t('job.version')}: `, versionLink(produced.name, produced.version)) : null,
      h('div', { class: 'row' }, actions));
    ctx.title(jobName(job));
  }

  function drawProgress() {
    const p = jobProgress(job) || (live.total ? { step: live.step, total: live.total, frac: live.step / live.total } : null);
    const st = job.state === 'running' && live.step !== null ? { step: live.step, total: live.total, frac: live.step / live.total } : p;
    const parts = [progressBar(st, t('job.progress'))];
    const bits = [];
    if (ACTIVE.includes(job.state)) {
      const e = live.eta !== null && job.state === 'running' ? fmtDuration(live.eta) : eta(job);
      bits.push(`${t('job.eta')}: ${e}`);
    }
    const m = job.latest_metrics || {};
    const tps = live.tps ?? m.tokens_per_second;
    const loss = live.loss ?? m.train_loss;
    if (Number.isFinite(tps)) bits.push(`${t('metric.tokens_per_second')}: ${fmtNum(tps, 0)}`);
    if (Number.isFinite(loss)) bits.push(`${t('metric.train_loss')}: ${fmtNum(loss, 4)}`);
    parts.push(h('p', { class: 'muted small' }, bits.join(' · ')));
    if (job.error && job.error.message) {
      parts.push(errorBox({ message: job.error.message, line: job.error.line, param: job.error.param }));
    }
    replace(progress, parts);
  }

  function drawDetails() {
    replace(details, h('div', { class: 'panel' }, facts([
      [t('job.id'), h('span', { class: 'mono break' }, job.id)],
      [t('job.model'), job.model],
      [t('job.method'), t(`method.${job.method.type}`)],
      [t('job.adapter'), t(`adapter.${job.adapter}`)],
      [t('job.training_file'), h('span', { class: 'mono break' }, job.training_file)],
      [t('job.validation_file'), job.validation_file ? h('span', { class: 'mono break' }, job.validation_file) : '—'],
      [t('job.fine_tuned_model'), job.fine_tuned_model ? h('span', { class: 'mono break' }, job.fine_tuned_model) : '—'],
      [t('job.version'), produced ? versionLink(produced.name, produced.version) : '—'],
      [t('job.parent_version'), job.parent_version ? refLink(job.parent_version) : '—'],
      [t('job.trained_tokens'), fmtInt(job.trained_tokens)],
      [t('job.created'), fmtTime(job.created_at)],
      [t('job.finished'), fmtTime(job.finished_at)],
      [t('job.attempt'), `${job.attempt} / ${job.max_attempts}`],
      [t('job.worker'), job.worker || '—'],
      [t('job.seed'), String(job.seed)],
    ])));
    const hp = { ...(job.method[job.method.type] || {}).hyperparameters };
    const rows = Object.entries(hp).map(([k, v]) => ({ id: k, k, v }));
    if (job.lora) for (const [k, v] of Object.entries(job.lora)) rows.push({ id: `lora.${k}`, k: `lora.${k}`, v });
    rows.push({ id: 'gpus', k: 'gpus', v: job.gpus }, { id: 'priority', k: 'priority', v: job.priority });
    replace(hpBox, table([
      { label: t('job.hp_name'), cell: (r) => h('code', {}, r.k) },
      { label: t('job.hp_value'), cell: (r) => (typeof r.v === 'object' ? JSON.stringify(r.v) : String(r.v)) },
    ], rows, { caption: t('job.hyperparameters') }));
  }

  function drawAll() {
    drawHead();
    drawProgress();
    drawDetails();
    findVersion();
  }

  // Promote a checkpoint of a LoRA / QLoRA job to the next version of one
  // of the team's registered models (docs/registry.md, "Versions").
  async function promoteForm(cks) {
    if (!ctx.can('member') || job.adapter === 'none' || !cks.length) return null;
    const names = (await api('GET', '/v1/registry/models', null, { limit: 100 })).data.map((m) => m.name);
    if (!names.length) return h('p', { class: 'muted small' }, t('job.promote_no_model'), ' ', h('a', { href: '#/registry' }, t('nav.registry')));
    const ck = h('select', { id: uid('ck'), dataset: { field: 'checkpoint' } },
      cks.map((c) => h('option', { value: c.fine_tuned_model_checkpoint }, t('job.ck_at_step', { step: fmtInt(c.step_number) }))));
    const rm = h('select', { id: uid('rm'), dataset: { field: 'registered_model' } }, names.map((n) => h('option', { value: n }, n)));
    const msg = h('div', { 'aria-live': 'assertive' });
    const form = h('form', { class: 'panel', dataset: { write: 'promote-checkpoint' } }, h('h3', {}, t('job.promote')),
      h('div', { class: 'grid2' }, field(t('job.checkpoint'), ck), field(t('job.promote_into'), rm)),
      h('p', { class: 'help' }, t('job.promote_help')), msg,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('job.promote'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      try {
        const v = await api('POST', `/v1/registry/models/${encodeURIComponent(rm.value)}/versions`, { checkpoint: ck.value });
        replace(msg, h('p', { class: 'notice ok', dataset: { promoted: v.ref } }, t('job.promoted'), ' ', versionLink(v.model, v.version)));
      } catch (x) { replace(msg, errorBox(x)); }
    });
    return form;
  }

  // Redrawn only when the checkpoints change (a replay reloads them often),
  // so a promotion being filled in is not wiped.
  let ckDrawn = null;
  let promote = null;
  async function loadCheckpoints() {
    try {
      const r = await api('GET', `/v1/fine_tuning/jobs/${id}/checkpoints`, null, { limit: 100 });
      const key = `${job.state} ${r.data.map((c) => c.id).join(' ')}`;
      if (key === ckDrawn) return;
      ckDrawn = key;
      const list = table([
        { label: t('job.ck_step'), num: true, cell: (c) => fmtInt(c.step_number) },
        { label: t('job.ck_metrics'), cell: (c) => ckMetrics(c.metrics) },
        { label: t('job.ck_name'), cell: (c) => h('span', { class: 'mono break' }, c.fine_tuned_model_checkpoint) },
        { label: t('job.created'), cell: (c) => fmtTime(c.created_at) },
      ], r.data, { empty: t('job.no_checkpoints'), caption: t('job.checkpoints') });
      replace(ckBox, list);
      if (job.state === 'succeeded') {
        promote = promote || promoteForm(r.data);
        const form = await promote;
        if (form) ckBox.append(form);
      }
    } catch (e) {
      ckDrawn = null;
      replace(ckBox, errorBox(e));
    }
  }

  // Several status events in a row (a replay) fetch the job once.
  let reloadTimer = null;
  function reload() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(reloadNow, 250);
  }

  async function reloadNow() {
    try {
      job = await api('GET', `/v1/fine_tuning/jobs/${id}`);
      drawAll();
    } catch (e) { replace(err, errorBox(e)); }
    loadCheckpoints();
  }

  function onEvent(ev) {
    const li = h('li', { class: ev.level, dataset: { type: ev.type } },
      h('time', { datetime: new Date(ev.created_at * 1000).toISOString() }, fmtClock(ev.created_at)),
      h('span', { class: 'muted' }, t(`level.${ev.level}`)), h('span', {}, ev.message));
    events.prepend(li);
    while (events.childElementCount > MAX_EVENTS) events.lastElementChild.remove();
    const d = ev.data;
    if (ev.type === 'metrics' && d && typeof d === 'object') {
      for (const c of charts) for (const s of c.series) if (s.points && d[s.key] !== undefined) c.set(s.key, d.step, d[s.key]);
      if (d.type === 'step') {
        live.step = d.step;
        live.total = d.total_steps;
        live.eta = d.eta_seconds;
        live.tps = d.tokens_per_second;
        live.loss = d.train_loss;
        if (job && job.state === 'running') drawProgress();
      }
      return;
    }
    if (ev.type === 'status' || /checkpoint/i.test(ev.message)) reload();
  }

  async function start() {
    replace(root, loading());
    try {
      job = await api('GET', `/v1/fine_tuning/jobs/${id}`);
    } catch (e) {
      replace(root, errorBox(e));
      return;
    }
    charts = chartsFor(job.method.type).map((c) => {
      const lc = new LineChart({ caption: c.caption, series: c.series, empty: t('job.no_metrics') });
      lc.el.dataset.chartId = c.id;
      return lc;
    });
    replace(chartBox, charts.map((c) => c.el));
    replace(root, head, err, progress,
      h('h2', {}, t('job.curves')), chartBox,
      h('h2', {}, t('job.events')), events,
      h('h2', {}, t('job.checkpoints')), ckBox,
      h('h2', {}, t('job.hyperparameters')), hpBox,
      h('h2', {}, t('job.details')), details);
    drawAll();
    loadCheckpoints();
    stop = streamJobEvents(id, onEvent, () => { reload(); });
  }
  start();
  return () => {
    clearTimeout(reloadTimer);
    if (stop) stop();
    for (const c of charts) c.dispose();
  };
}
