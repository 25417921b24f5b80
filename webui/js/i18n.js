// i18n.js - the two message tables (i18n/en.json, i18n/zh.json: one key
// set, checked by tests/system/test_console_static.py) and the formatters
// that depend on the language.
//
// t('jobs.title') looks a key up in the current language; t('x', {n: 3})
// replaces {n}. A missing key shows as the key itself, so a gap is visible
// on screen rather than blank. The choice is kept in localStorage; the
// first visit follows the browser (zh* -> Chinese, else English).

export const LANGS = ['en', 'zh'];
const STORE = 'ftplat.lang';
const tables = {};
let lang = 'en';

export async function initI18n() {
  const loaded = await Promise.all(LANGS.map(async (l) => {
    const r = await fetch(`/console/i18n/${l}.json`);
    if (!r.ok) throw new Error(`cannot load the ${l} messages (${r.status})`);
    return [l, await r.json()];
  }));
  for (const [l, table] of loaded) tables[l] = table;
  let want = null;
  try { want = localStorage.getItem(STORE); } catch (e) { want = null; }
  if (!LANGS.includes(want)) want = (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  setLang(want);
}

export function getLang() { return lang; }

export function setLang(l) {
  lang = LANGS.includes(l) ? l : 'en';
  try { localStorage.setItem(STORE, lang); } catch (e) { /* private mode: session only */ }
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
}

export function t(key, vars) {
  const s = (tables[lang] && tables[lang][key]) ?? (tables.en && tables.en[key]) ?? key;
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

export function has(key) { return Boolean(tables[lang] && key in tables[lang]); }

const locale = () => (lang === 'zh' ? 'zh-CN' : 'en-GB');

export function fmtNum(x, digits) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return '—';
  const opts = digits === undefined ? { maximumSignificantDigits: 6 } : { maximumFractionDigits: digits, minimumFractionDigits: 0 };
  return new Intl.NumberFormat(locale(), opts).format(Number(x));
}

export function fmtInt(x) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return '—';
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(Number(x));
}

// 1.2 GiB, 340 MiB ...
export function fmtBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${fmtNum(v, i ? 1 : 0)} ${units[i]}`;
}

// Unix seconds -> a local date and time.
export function fmtTime(sec) {
  if (!sec) return '—';
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(sec * 1000));
}

export function fmtClock(sec) {
  if (!sec) return '';
  return new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(sec * 1000));
}

// A duration in seconds -> "2 h 5 min", "40 s".
export function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(Number(s))) return '—';
  s = Math.max(0, Math.round(Number(s)));
  if (s < 60) return t('unit.seconds', { n: s });
  const m = Math.round(s / 60);
  if (m < 60) return t('unit.minutes', { n: m });
  const hrs = Math.floor(m / 60);
  return t('unit.hours_minutes', { h: hrs, m: m % 60 });
}

// Parameter counts: 3.95 M, 8.03 B.
export function fmtParams(n) {
  if (!Number.isFinite(Number(n))) return '—';
  n = Number(n);
  if (n >= 1e9) return `${fmtNum(n / 1e9, 2)} B`;
  if (n >= 1e6) return `${fmtNum(n / 1e6, 2)} M`;
  if (n >= 1e3) return `${fmtNum(n / 1e3, 1)} K`;
  return fmtInt(n);
}
