// chart.js - a small SVG line chart for training curves (why SVG rather
// than Chart.js: webui/README.md).
//
//   const c = new LineChart({caption, series: [{key, label}], format});
//   c.set('train_loss', step, value); ...   // add or replace a point
//   parent.append(c.el);
//
// The SVG is drawn at the figure's real width (a ResizeObserver redraws it),
// so text stays readable on a phone. Each series is one <polyline> with a
// data-points attribute (the tests read it). The figure is focusable: the
// arrow keys (and the pointer) move a cursor whose values are read out as
// text below the plot, for keyboards and screen readers alike.

import { h, replace } from './dom.js';

const NS = 'svg:';
const HEIGHT = 210;
const M = { l: 54, r: 12, t: 10, b: 26 };

function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

function ticks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, n);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export class LineChart {
  constructor({ caption, series, format, empty }) {
    this.series = series.map((s, i) => ({ ...s, cls: `s${i % 6}`, points: new Map() }));
    this.format = format || ((v) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(Number(v.toPrecision(4)))));
    this.emptyText = empty || '';
    this.cursor = -1;
    this.svg = h(`${NS}svg`, { role: 'img', 'aria-label': caption, focusable: 'false' });
    this.readout = h('div', { class: 'readout', 'aria-live': 'polite' });
    this.legend = h('div', { class: 'legend' }, this.series.map((s) => h('span', {}, h('span', { class: `key ${s.cls}` }), s.label)));
    this.el = h('figure', { class: 'chart', tabindex: '0', dataset: { chart: series.map((s) => s.key).join(' ') } },
      h('figcaption', {}, caption), this.svg, this.legend, this.readout);
    this.el.addEventListener('keydown', (e) => this.key(e));
    this.svg.addEventListener('pointermove', (e) => this.pointer(e));
    this.scheduled = false;
    this.ro = new ResizeObserver(() => this.schedule());
    this.ro.observe(this.el);
  }

  set(key, x, y) {
    const s = this.series.find((q) => q.key === key);
    if (!s || y === null || y === undefined || !Number.isFinite(Number(y)) || !Number.isFinite(Number(x))) return;
    s.points.set(Number(x), Number(y));
    this.schedule();
  }

  hasData() { return this.series.some((s) => s.points.size > 0); }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => { this.scheduled = false; this.render(); });
  }

  xs() {
    const all = new Set();
    for (const s of this.series) for (const x of s.points.keys()) all.add(x);
    return [...all].sort((a, b) => a - b);
  }

  render() {
    const width = Math.max(240, Math.floor(this.el.clientWidth - 26) || 560);
    const W = width - M.l - M.r;
    const H = HEIGHT - M.t - M.b;
    this.svg.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
    const xs = this.xs();
    let ylo = Infinity;
    let yhi = -Infinity;
    for (const s of this.series) for (const y of s.points.values()) { ylo = Math.min(ylo, y); yhi = Math.max(yhi, y); }
    const kids = [];
    if (!xs.length) {
      kids.push(h(`${NS}text`, { x: width / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'none' }, this.emptyText));
      replace(this.svg, kids);
      return;
    }
    if (ylo === yhi) { ylo -= Math.abs(ylo) * 0.1 || 1; yhi += Math.abs(yhi) * 0.1 || 1; }
    const pad = (yhi - ylo) * 0.05;
    ylo -= pad; yhi += pad;
    const xlo = xs[0];
    const xhi = xs.length > 1 ? xs[xs.length - 1] : xlo + 1;
    this.scale = {
      x: (x) => M.l + ((x - xlo) / (xhi - xlo)) * W,
      y: (y) => M.t + (1 - (y - ylo) / (yhi - ylo)) * H,
    };
    const { x: sx, y: sy } = this.scale;
    const grid = h(`${NS}g`, { class: 'grid' });
    const axis = h(`${NS}g`, { class: 'axis' });
    const yt = ticks(ylo, yhi, 4);
    const step = yt.length > 1 ? yt[1] - yt[0] : Math.abs(yt[0]) || 1;
    const small = step < 1e-3;
    const decimals = Math.max(0, -Math.floor(Math.log10(step)));
    for (const v of yt) {
      grid.append(h(`${NS}line`, { x1: M.l, x2: M.l + W, y1: sy(v), y2: sy(v) }));
      const label = small ? v.toExponential(1) : v.toFixed(decimals);
      axis.append(h(`${NS}text`, { x: M.l - 6, y: sy(v) + 4, 'text-anchor': 'end' }, label));
    }
    for (const v of ticks(xlo, xhi, Math.max(2, Math.floor(W / 90)))) {
      if (!Number.isInteger(v)) continue;
      axis.append(h(`${NS}text`, { x: sx(v), y: HEIGHT - 8, 'text-anchor': 'middle' }, String(v)));
    }
    axis.append(h(`${NS}line`, { x1: M.l, x2: M.l + W, y1: M.t + H, y2: M.t + H }));
    kids.push(grid, axis);
    for (const s of this.series) {
      const pts = [...s.points.entries()].sort((a, b) => a[0] - b[0]);
      if (!pts.length) continue;
      const attrs = { class: `series ${s.cls}`, dataset: { series: s.key, points: pts.length } };
      if (pts.length === 1) {
        kids.push(h(`${NS}circle`, { ...attrs, class: `dot ${s.cls}`, cx: sx(pts[0][0]), cy: sy(pts[0][1]), r: 3 }));
      } else {
        kids.push(h(`${NS}polyline`, { ...attrs, points: pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ') }));
      }
    }
    if (this.cursor >= 0 && this.cursor < xs.length) {
      const cx = sx(xs[this.cursor]);
      kids.push(h(`${NS}line`, { class: 'cursor', x1: cx, x2: cx, y1: M.t, y2: M.t + H }));
    }
    replace(this.svg, kids);
  }

  show(i) {
    const xs = this.xs();
    if (!xs.length) return;
    this.cursor = Math.max(0, Math.min(xs.length - 1, i));
    const x = xs[this.cursor];
    const parts = this.series.filter((s) => s.points.has(x)).map((s) => `${s.label} ${this.format(s.points.get(x))}`);
    this.readout.textContent = `${x}: ${parts.join(' · ')}`;
    this.render();
  }

  key(e) {
    const n = this.xs().length;
    const moves = { ArrowRight: 1, ArrowLeft: -1, End: n, Home: -n };
    if (!(e.key in moves)) return;
    e.preventDefault();
    this.show((this.cursor < 0 ? n - 1 : this.cursor) + moves[e.key]);
  }

  pointer(e) {
    if (!this.scale) return;
    const xs = this.xs();
    const box = this.svg.getBoundingClientRect();
    const vb = this.svg.viewBox.baseVal;
    const px = ((e.clientX - box.left) / box.width) * vb.width;
    let best = 0;
    for (let i = 1; i < xs.length; i += 1) if (Math.abs(this.scale.x(xs[i]) - px) < Math.abs(this.scale.x(xs[best]) - px)) best = i;
    this.show(best);
  }

  dispose() { this.ro.disconnect(); }
}
