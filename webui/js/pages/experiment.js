// experiment.js - one A/B experiment: its arms (weight, status), the
// results the scheduler's leader computed (GET /v1/experiments/{id}/results:
// win rates and ratings with their bootstrap 95% intervals, each arm's
// decision against the control, the judgments still needed, feedback rates
// with Wilson intervals), start / pause / stop, and a person's judgment of
// two answers to one prompt (A, B, tie, both bad). Polled every few seconds
// while it runs: the leader recomputes on its own period.

import { api } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, fmtNum, fmtTime, t } from '../i18n.js';
import { badge, errorBox, facts, field, loading, notice, table, toast } from '../ui.js';
import { versionLink } from '../registry.js';

const POLL_MS = 3000;
const OUTCOMES = ['a', 'b', 'tie', 'both_bad'];
const ACTIONS = { draft: ['start', 'stop'], running: ['pause', 'stop'], paused: ['start', 'stop'], stopped: [] };

const pct = (x) => (x === null || x === undefined || !Number.isFinite(Number(x)) ? '—' : `${fmtNum(100 * x, 1)} %`);
// {lo, median, hi} or [lo, hi] -> "[lo, hi]"
function ci(iv, fmt) {
  if (!iv) return '';
  const [lo, hi] = Array.isArray(iv) ? iv : [iv.lo, iv.hi];
  if (!Number.isFinite(Number(lo)) || !Number.isFinite(Number(hi))) return '';
  return ` [${fmt(lo)}, ${fmt(hi)}]`;
}
const rating = (x) => fmtNum(x, 0);

export function mount(root, ctx) {
  const id = ctx.params.id;
  const head = h('div', {}, loading());
  const msg = h('div', { 'aria-live': 'assertive' });
  const armsBox = h('div');
  const resultsBox = h('div');
  const judgeBox = h('div');
  let x = null;
  let judgeArms = '';

  function drawHead() {
    ctx.title(`${t('exp.title_one')} ${x.name}`);
    const buttons = ctx.can('member') ? ACTIONS[x.status].map((a) => h('button', {
      type: 'button', class: a === 'stop' ? 'danger' : null, dataset: { write: `exp-${a}` },
      on: { click: async () => {
        replace(msg);
        try {
          x = await api('POST', `/v1/experiments/${encodeURIComponent(id)}/${a}`, {});
          toast(t(`exp.done_${a}`));
          draw();
        } catch (e) { replace(msg, errorBox(e)); }
      } } }, t(`exp.action_${a}`))) : [];
    replace(head, h('div', { class: 'row' }, h('h1', { class: 'grow break' }, x.name), badge(x.status)),
      h('p', { class: 'muted mono break' }, x.id),
      x.description ? h('p', { class: 'pre-line' }, x.description) : null,
      h('div', { class: 'row' }, buttons),
      h('div', { class: 'panel' }, facts([
        [t('exp.assignment'), t(`exp.assign_${x.assignment}`)],
        [t('exp.alpha'), fmtNum(x.alpha)], [t('exp.power'), fmtNum(x.power)],
        [t('exp.created'), fmtTime(x.created_at)], [t('exp.started'), fmtTime(x.started_at)],
        [t('exp.ended'), fmtTime(x.ended_at)],
        x.stop_reason ? [t('exp.stop_reason'), x.stop_reason] : null])));
  }

  function drawArms(res) {
    const stats = (res && res.arms) || [];
    const boot = (res && res.bootstrap) || {};
    const ratings = (res && res.ratings && res.ratings.rating) || [];
    replace(armsBox, h('h2', {}, t('exp.arms')), table([
      { label: t('exp.arm_name'), cell: (a) => h('strong', { class: 'break' }, a.name, a.position === 0 ? h('span', { class: 'muted small' }, ` (${t('exp.control')})`) : null) },
      { label: t('exp.arm_model'), cell: (a) => (a.version ? versionLink(a.version.model, a.version.version) : h('code', { class: 'break' }, a.model)) },
      { label: t('exp.arm_weight'), num: true, cell: (a) => fmtNum(a.weight, 3) },
      { label: t('exp.status'), cell: (a) => h('span', {}, badge(a.status), a.stop_reason ? h('span', { class: 'muted small break' }, ` ${a.stop_reason}`) : null) },
      { label: t('exp.judgments'), num: true, cell: (a) => fmtInt((stats[a.position] || {}).judgments) },
      { label: t('exp.win_rate'), num: true, cell: (a) => h('span', { dataset: { winRate: a.name } },
        pct((stats[a.position] || {}).win_rate), ci((boot.win_rate || [])[a.position], pct)) },
      { label: t('exp.rating'), num: true, cell: (a) => h('span', { dataset: { rating: a.name } },
        ratings[a.position] === undefined ? '—' : rating(ratings[a.position]), ci((boot.rating || [])[a.position], rating)) },
      { label: t('exp.requests'), num: true, cell: (a) => fmtInt((stats[a.position] || {}).requests) },
      { label: t('exp.feedback'), cell: (a) => feedbackCell((stats[a.position] || {}).feedback) },
    ], x.arms.map((a, i) => ({ ...a, position: a.position ?? i, id: a.name })), { caption: t('exp.arms') }));
  }

  function feedbackCell(fb) {
    if (!fb) return '—';
    const parts = ['thumbs_up', 'resolved', 'escalated'].filter((k) => fb[k] && fb[k].n)
      .map((k) => h('div', { class: 'small nowrap' }, `${t(`exp.fb_${k}`)} ${pct(fb[k].count / fb[k].n)}${ci(fb[k].interval, pct)} (${fmtInt(fb[k].count)}/${fmtInt(fb[k].n)})`));
    return parts.length ? parts : '—';
  }

  function drawResults(res) {
    const out = [h('h2', {}, t('exp.results'))];
    if (!res || !res.computed_at) {
      out.push(notice(t('exp.not_computed'), 'info'));
      replace(resultsBox, out);
      return;
    }
    const j = res.judgments || {};
    out.push(h('p', { class: 'muted small' }, t('exp.computed', { at: fmtTime(res.computed_at) }), ' · ',
      t('exp.judgments_done', { done: fmtInt(j.done), pending: fmtInt(j.pending), failed: fmtInt(j.failed) })));
    if (res.ratings && res.ratings.error) out.push(h('p', { class: 'muted small break' }, t('exp.ratings_note'), ' ', res.ratings.error));
    out.push(table([
      { label: t('exp.comparison'), cell: (c) => `${c.arm} / ${c.control}` },
      { label: t('exp.judgments'), num: true, cell: (c) => fmtInt(c.judgments) },
      { label: t('exp.share'), num: true, cell: (c) => pct(c.share) },
      { label: t('exp.decision'), cell: (c) => h('span', { dataset: { decision: c.arm, decided: String(Boolean(c.decided)) } },
        c.decided ? t('exp.decided', { winner: c.winner }) : t('exp.undecided')) },
      { label: t('exp.needed'), num: true, cell: (c) => (c.judgments_needed
        ? (c.judgments_needed.reachable ? fmtInt(c.judgments_needed.more) : t('exp.unreachable')) : '—') },
    ], (res.comparisons || []).map((c) => ({ ...c, id: c.arm })), { empty: t('exp.no_comparisons'), caption: t('exp.results') }));
    const rule = res.decision_rule;
    if (rule && rule.false_positive_rate) out.push(h('p', { class: 'muted small' }, t('exp.rule', { alpha: fmtNum(rule.alpha_per_comparison) })));
    replace(resultsBox, out);
  }

  // the judgment form: two arms, a prompt, their answers, the verdict
  function drawJudge() {
    if (!ctx.can('member') || !['running', 'paused'].includes(x.status)) { replace(judgeBox); judgeArms = ''; return; }
    const key = x.arms.map((a) => a.name).join('\n');
    if (key === judgeArms) return;   // keep what is being typed across polls
    judgeArms = key;
    const armSel = (chosen) => h('select', { id: uid('arm') }, x.arms.map((a) => h('option', { value: a.name, selected: a.name === chosen }, a.name)));
    const armA = armSel(x.arms[0].name);
    const armB = armSel(x.arms[1].name);
    const prompt = h('textarea', { id: uid('prompt'), rows: 2, required: true });
    const ansA = h('textarea', { id: uid('a'), rows: 3, required: true });
    const ansB = h('textarea', { id: uid('b'), rows: 3, required: true });
    const jmsg = h('div', { 'aria-live': 'assertive' });
    const send = (winner) => async () => {
      replace(jmsg);
      try {
        await api('POST', `/v1/experiments/${encodeURIComponent(id)}/judgments`, {
          arm_a: armA.value, arm_b: armB.value, winner, prompt: prompt.value, answer_a: ansA.value, answer_b: ansB.value,
        });
        toast(t('exp.judged'));
        prompt.value = ''; ansA.value = ''; ansB.value = '';
        refresh();
      } catch (e) { replace(jmsg, errorBox(e)); }
    };
    replace(judgeBox, h('form', { class: 'panel', dataset: { write: 'judge' }, on: { submit: (e) => e.preventDefault() } },
      h('h2', {}, t('exp.judge')), h('p', { class: 'help' }, t('exp.judge_help')),
      h('div', { class: 'grid2' }, field(t('exp.arm_a'), armA), field(t('exp.arm_b'), armB)),
      field(t('exp.prompt'), prompt),
      h('div', { class: 'grid2' }, field(t('exp.answer_a'), ansA), field(t('exp.answer_b'), ansB)),
      jmsg,
      h('div', { class: 'row' }, OUTCOMES.map((o) => h('button', { type: 'button', dataset: { outcome: o }, on: { click: send(o) } }, t(`exp.outcome_${o}`))))));
  }

  let res = null;
  function draw() {
    drawHead();
    drawArms(res);
    drawResults(res);
    drawJudge();
  }

  async function refresh() {
    try {
      [x, res] = await Promise.all([api('GET', `/v1/experiments/${encodeURIComponent(id)}`),
        api('GET', `/v1/experiments/${encodeURIComponent(id)}/results`)]);
      draw();
    } catch (e) { replace(head, errorBox(e)); }
  }

  replace(root, head, msg, armsBox, resultsBox, judgeBox);
  refresh();
  const timer = setInterval(() => { if (!document.hidden && x && x.status !== 'stopped') refresh(); }, POLL_MS);
  return () => clearInterval(timer);
}
