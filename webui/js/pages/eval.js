// eval.js - one offline evaluation: status and progress (polled while it
// runs), cancel, each model's metrics side by side as GET /v1/evals/{id}
// gives them (perplexity of the references, ROUGE-L, BLEU, the share of
// answers holding every required fact with its Wilson interval, the LLM
// judge's win rate against the references), and on demand every row's
// answers beside the question and the reference (?rows=true).

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { fmtInt, fmtNum, fmtTime, t } from '../i18n.js';
import { badge, errorBox, facts, loading, notice, progressBar, table, toast } from '../ui.js';

const POLL_MS = 2000;
const DONE = ['succeeded', 'failed', 'cancelled'];

const pct = (x) => (x === null || x === undefined || !Number.isFinite(Number(x)) ? '—' : `${fmtNum(100 * x, 1)} %`);
const ci = (iv) => (Array.isArray(iv) && iv.length === 2 && iv.every((v) => Number.isFinite(Number(v)))
  ? ` [${pct(iv[0])}, ${pct(iv[1])}]` : '');

export function mount(root, ctx) {
  const id = ctx.params.id;
  const head = h('div', {}, loading());
  const msg = h('div', { 'aria-live': 'assertive' });
  const metricsBox = h('div');
  const rowsBox = h('div');
  let e = null;
  let rowsShown = false;

  function drawHead() {
    ctx.title(`${t('eval.title_one')} ${e.name || e.id}`);
    const busy = !DONE.includes(e.status);
    const cancel = ctx.can('member') && busy && e.status !== 'cancelling' ? h('button', {
      type: 'button', class: 'danger', dataset: { write: 'eval-cancel' },
      on: { click: async () => {
        replace(msg);
        try {
          e = await api('POST', `/v1/evals/${encodeURIComponent(id)}/cancel`, {});
          toast(t('eval.cancelled_ok'));
          draw();
        } catch (err) { replace(msg, errorBox(err)); }
      } } }, t('eval.cancel')) : null;
    const p = e.progress || {};
    const prog = busy && p.total_rows ? h('div', { dataset: { progress: `${p.done_rows}/${p.total_rows}` } },
      h('p', { class: 'small muted' }, t('eval.progress_model', { n: fmtInt((p.model || 0) + 1), of: fmtInt(p.models) })),
      progressBar({ step: p.done_rows, total: p.total_rows }, t('eval.progress'))) : null;
    const o = e.options || {};
    replace(head, h('div', { class: 'row' }, h('h1', { class: 'grow break' }, e.name || e.id), badge(e.status)),
      h('p', { class: 'muted mono break' }, e.id),
      h('div', { class: 'row' }, cancel), prog,
      e.error ? notice(`${e.error.code || ''} ${e.error.message || ''}`.trim(), 'bad') : null,
      h('div', { class: 'panel' }, facts([
        [t('eval.file'), h('code', { class: 'break' }, e.file)],
        [t('eval.max_new_tokens'), fmtInt(o.max_new_tokens)],
        [t('eval.max_rows'), o.max_rows ? fmtInt(o.max_rows) : t('eval.all_rows')],
        [t('eval.rouge_tokenizer'), o.rouge_tokenizer || '—'], [t('eval.bleu_tokenizer'), o.bleu_tokenizer || '—'],
        [t('eval.created'), fmtTime(e.created_at)], [t('eval.started'), fmtTime(e.started_at)],
        [t('eval.finished'), fmtTime(e.finished_at)],
        e.judge ? [t('eval.judge'), `${e.judge.model} · ${e.judge.url}`] : null])));
  }

  function drawMetrics() {
    const hasJudge = Boolean(e.judge);
    const cols = [
      { label: t('eval.model'), cell: (m) => h('code', { class: 'break' }, m.model) },
      { label: t('eval.perplexity'), num: true, cell: (m) => h('span', { dataset: { ppl: m.position } }, fmtNum((m.metrics || {}).perplexity, 3)) },
      { label: t('eval.rouge_l'), num: true, cell: (m) => h('span', { dataset: { rouge: m.position } }, fmtNum(((m.metrics || {}).rouge_l || {}).fmeasure, 4)) },
      { label: t('eval.bleu'), num: true, cell: (m) => h('span', { dataset: { bleu: m.position } }, fmtNum(((m.metrics || {}).bleu || {}).score, 2)) },
      { label: t('eval.facts'), num: true, cell: (m) => {
        const f = (m.metrics || {}).facts;
        return h('span', { dataset: { facts: m.position } }, f ? `${pct(f.share)}${ci(f.interval)} (${fmtInt(f.all_found)}/${fmtInt(f.rows)})` : '—');
      } },
    ];
    if (hasJudge) {
      cols.push({ label: t('eval.judge_win_rate'), num: true, cell: (m) => {
        const j = m.judge || {};
        return h('span', { dataset: { judge: m.position } }, `${pct(j.win_rate)}${ci(j.ci95)}`,
          j.pending ? h('span', { class: 'muted small' }, ` ${t('eval.judge_pending', { n: fmtInt(j.pending) })}`) : null);
      } });
    }
    const rows = e.models.map((m) => ({ ...m, id: String(m.position) }));
    replace(metricsBox, h('h2', {}, t('eval.metrics')),
      e.status === 'succeeded' || e.models.some((m) => m.metrics) ? table(cols, rows, { caption: t('eval.metrics') })
        : notice(t('eval.no_metrics'), 'info'),
      h('p', { class: 'help' }, t('eval.metrics_help')));
  }

  async function showRows() {
    replace(rowsBox, loading());
    try {
      const full = await api('GET', `/v1/evals/${encodeURIComponent(id)}?rows=true`);
      const models = full.models.map((m) => m.model);
      const answer = (r, k) => {
        const a = (r.answers || [])[k];
        if (!a) return '—';
        const ok = a.all_facts === null || a.all_facts === undefined ? null
          : badge(a.all_facts ? 'ok' : 'alert', 'eval.facts_state');
        return h('div', {}, h('div', { class: 'pre-line break', dataset: { answer: `${r.line}-${k}` } }, a.answer), ok);
      };
      const cols = [
        { label: t('eval.line'), num: true, cell: (r) => fmtInt(r.line) },
        { label: t('eval.question'), cell: (r) => h('div', { class: 'pre-line break' }, r.question ?? '—') },
        { label: t('eval.reference'), cell: (r) => h('div', { class: 'pre-line break' }, r.reference) },
        ...models.map((name, k) => ({ label: name, cell: (r) => answer(r, k) })),
      ];
      replace(rowsBox, h('h2', {}, t('eval.rows')),
        table(cols, (full.rows || []).map((r) => ({ ...r, id: String(r.line) })), { empty: t('eval.no_rows'), caption: t('eval.rows') }));
    } catch (err) { replace(rowsBox, errorBox(err)); }
  }

  function drawRowsButton() {
    if (rowsShown || e.status !== 'succeeded') { if (!rowsShown) replace(rowsBox); return; }
    replace(rowsBox, h('button', { type: 'button', dataset: { showRows: '' },
      on: { click: () => { rowsShown = true; showRows(); } } }, t('eval.show_rows')));
  }

  function draw() {
    drawHead();
    drawMetrics();
    drawRowsButton();
  }

  async function refresh() {
    try {
      e = await api('GET', `/v1/evals/${encodeURIComponent(id)}`);
      draw();
    } catch (err) { replace(head, errorBox(err)); }
  }

  replace(root, head, msg, metricsBox, rowsBox);
  refresh();
  const judging = () => e && e.judge && e.models.some((m) => m.judge && m.judge.pending);
  const timer = setInterval(() => { if (!document.hidden && e && (!DONE.includes(e.status) || judging())) refresh(); }, POLL_MS);
  return () => clearInterval(timer);
}
