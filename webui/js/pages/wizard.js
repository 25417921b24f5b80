// wizard.js - a new fine-tuning job in four steps:
//   1 data         upload (with progress) or pick a dataset; its validation
//                  report, line-numbered errors and statistics
//   2 model        base model, method, adapter and LoRA shape (rank, alpha,
//                  dropout, target modules, layers to transform), suffix
//   3 settings     hyperparameters with their defaults, ranges and a line
//                  of help each
//   4 review       the request body and the estimate of tokens, steps, time
//                  and GPU memory, then create
//
// Facts come from the API, never from a copy here: the hyperparameters'
// names, types, ranges and defaults from the served OpenAPI document
// (/v1/openapi.json, JobCreate), the estimate from POST
// /v1/fine_tuning/jobs/estimate (the numbers admission uses).
// The model is a base model or a model version of the team (its fine-tuned
// models, "NAME/N"): a version is continued, its adapter the starting point
// (docs/registry.md, "Continuing training"), so its LoRA shape is the
// version's and only LoRA and QLoRA are offered.
// "#/new?from=<job>" prefills everything from that job (run it again);
// "#/new?from=<job>&model=<NAME/N>" the same with the version as the model
// (continue training); "#/new?dataset=<id>" preselects a training dataset.

import { api, listAll, uploadFile } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtBytes, fmtDuration, fmtInt, fmtNum, fmtParams, t } from '../i18n.js';
import { datasetReport, errorBox, field, filePicker, loading, notice, stat } from '../ui.js';

const STEPS = ['data', 'model', 'settings', 'review'];
const BASIC = ['n_epochs', 'batch_size', 'learning_rate_multiplier', 'beta'];
const DPO_FORMATS = ['preference', 'openai_dpo'];
// The linears LoRA may adapt: the trainer's table (ft_linear_parse,
// docs/trainer.md); JobCreate's lora.target_modules lists no enum to read.
const LINEARS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const POLL_MS = 400;

let specCache = null;
async function spec() {
  if (!specCache) specCache = await api('GET', '/v1/openapi.json');
  return specCache;
}

// The hyperparameter schemas of a method, from JobCreate in the spec.
function hpSchemas(doc, method) {
  const m = doc.components.schemas.JobCreate.properties.method.properties[method];
  return m.properties.hyperparameters.properties;
}

function loraSchema(doc) {
  return doc.components.schemas.JobCreate.properties.lora.properties;
}

// {type, min, max, auto, enum} of a property schema (oneOf "auto" | number).
function describe(s) {
  const alt = s.oneOf ? s.oneOf.find((x) => x.type !== 'string' || !x.const) : s;
  const auto = Boolean(s.oneOf && s.oneOf.some((x) => x.const === 'auto'));
  const bool = s.oneOf ? s.oneOf.some((x) => x.type === 'boolean') : s.type === 'boolean';
  return {
    type: bool ? 'boolean' : alt.type, min: alt.minimum ?? alt.exclusiveMinimum, max: alt.maximum,
    exclusiveMin: alt.exclusiveMinimum !== undefined, enum: alt.enum, auto, def: s.default,
  };
}

// lora.layers_to_transform in ftctl's --lora-layers syntax (cli/ftctl.c,
// layer_list): indices and inclusive ranges, comma-separated ("10-29",
// "0,5-7"), each from 0 to max (the schema's). The layers sorted, each once;
// [] for an empty text (every layer); null when malformed ("7-5", "a", "-1").
export function parseLayers(text, max) {
  if (!text.trim()) return [];
  const out = new Set();
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || (max !== undefined && hi > max)) return null;
    for (let l = lo; l <= hi; l += 1) out.add(l);
  }
  return [...out].sort((a, b) => a - b);
}

// The list written back as ftctl would take it: [0, 1, 2, 5] as "0-2,5".
function layersText(v) {
  const ls = [...new Set(Array.isArray(v) ? v : [v])].sort((a, b) => a - b);
  const parts = [];
  for (let i = 0; i < ls.length;) {
    let j = i;
    while (j + 1 < ls.length && ls[j + 1] === ls[j] + 1) j += 1;
    parts.push(j > i ? `${ls[i]}-${ls[j]}` : String(ls[i]));
    i = j + 1;
  }
  return parts.join(',');
}

async function waitValidated(id) {
  for (;;) {
    const ds = await api('GET', `/v1/datasets/${id}`);
    if (ds.status !== 'validating') return ds;
    await new Promise((r) => { setTimeout(r, POLL_MS); });
  }
}

// One data choice (training or validation): a dataset picked from the
// team's valid ones, or a file uploaded and validated now.
function dataPicker(kind, datasets, st, onChange) {
  const optional = kind === 'validation';
  const box = h('fieldset', { dataset: { picker: kind } });
  const reportBox = h('div');
  const select = h('select', { id: uid(kind) },
    h('option', { value: '' }, optional ? t('wizard.no_validation') : t('wizard.pick_dataset')),
    datasets.filter((d) => d.status === 'valid').map((d) => h('option', { value: d.id }, `${d.name} · ${d.format} · ${fmtInt(d.report && d.report.n_examples)}`)));
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': t('wizard.upload_progress') });
  const barText = h('span', { class: 'muted small' });

  function show(ds) {
    st.dataset = ds;
    st.file = ds ? ds.file_id : st.file;
    replace(reportBox, ds ? datasetReport(ds) : (st.file ? notice(t('wizard.file_without_report', { file: st.file })) : null));
    onChange();
  }

  select.addEventListener('change', async () => {
    if (!select.value) { st.file = null; show(null); return; }
    replace(reportBox, loading());
    try { show(await api('GET', `/v1/datasets/${select.value}`)); } catch (e) { replace(reportBox, errorBox(e)); }
  });

  async function onFile(f) {
    select.value = '';
    st.dataset = null;
    st.file = null;
    st.busy = true;
    onChange();
    bar.hidden = false;
    bar.value = 0;
    replace(reportBox);
    try {
      const up = await uploadFile(f, (done, total) => {
        bar.max = total || 1;
        bar.value = done;
        barText.textContent = t('wizard.uploaded', { done: fmtBytes(done), total: fmtBytes(total) });
      });
      barText.textContent = t('wizard.validating');
      const ds = await api('POST', '/v1/datasets', { file_id: up.id, name: f.name });
      const done = await waitValidated(ds.id);
      barText.textContent = '';
      bar.hidden = true;
      st.file = up.id;
      show(done);
    } catch (e) {
      bar.hidden = true;
      barText.textContent = '';
      replace(reportBox, errorBox(e));
    } finally {
      st.busy = false;
      onChange();
    }
  }
  const picker = filePicker(t('wizard.upload_file'), t('common.choose_file'), '.jsonl,.json,.txt', onFile);

  replace(box, h('legend', {}, t(`wizard.${kind}_data`)),
    h('div', { class: 'grid2' },
      field(t('wizard.existing_dataset'), select),
      h('div', {}, picker, h('div', { class: 'help' }, t('wizard.upload_help')), h('div', { class: 'row' }, bar, barText))),
    reportBox);
  return {
    el: box,
    preset(ds, fileId) {
      if (ds) {
        if ([...select.options].some((o) => o.value === ds.id)) select.value = ds.id;
        show(ds);
      } else if (fileId) {
        st.file = fileId;
        show(null);
      }
    },
  };
}

export function mount(root, ctx) {
  const st = {
    step: 0,
    train: { file: null, dataset: null, busy: false },
    val: { file: null, dataset: null, busy: false },
    model: '', method: 'supervised', methodTouched: false, adapter: 'lora', lora: {}, suffix: '', registered: '', hp: {},
    layers: '', // lora.layers_to_transform as typed; st.lora has it parsed
  };
  let doc = null;
  let models = []; // base models
  let versions = []; // fine-tuned models as versions: {ref, ft}
  const isVersion = () => Boolean(st.model) && !models.some((m) => m.id === st.model);
  const stepList = h('ol', { class: 'steps' });
  const body = h('div');
  const nav = h('div', { class: 'row end' });
  const err = h('div', { 'aria-live': 'assertive' });
  const panes = {};

  function dataOk() {
    const trainOk = st.train.file && (!st.train.dataset || st.train.dataset.status === 'valid');
    const valOk = !st.val.dataset || st.val.dataset.status === 'valid';
    return Boolean(trainOk && valOk && !st.train.busy && !st.val.busy);
  }

  function request() {
    const hp = {};
    for (const [k, v] of Object.entries(st.hp)) if (v !== '' && v !== undefined && v !== null) hp[k] = v;
    const b = { model: st.model, training_file: st.train.file, method: { type: st.method, [st.method]: { hyperparameters: hp } }, adapter: st.adapter };
    if (st.val.file) b.validation_file = st.val.file;
    if (st.adapter !== 'none' && !isVersion()) {
      const l = {};
      for (const [k, v] of Object.entries(st.lora)) if (v !== '' && v !== undefined && !(Array.isArray(v) && !v.length)) l[k] = v;
      if (Object.keys(l).length) b.lora = l;
    }
    if (st.suffix) b.suffix = st.suffix;
    if (st.registered) b.registered_model = st.registered;
    return b;
  }

  function drawSteps() {
    replace(stepList, STEPS.map((s, i) => h('li', { 'aria-current': i === st.step ? 'step' : null, class: i < st.step ? 'done' : null },
      `${i + 1}. ${t(`wizard.step_${s}`)}`)));
  }

  function drawNav() {
    const back = h('button', { type: 'button', disabled: st.step === 0 }, t('wizard.back'));
    back.addEventListener('click', () => { st.step -= 1; draw(); });
    const items = [back];
    if (st.step < STEPS.length - 1) {
      const ok = st.step !== 0 || dataOk();
      const next = h('button', { type: 'button', class: 'primary', disabled: !ok, dataset: { action: 'next' } }, t('wizard.next'));
      next.addEventListener('click', () => {
        if (st.step === 1 && !checkLayers(true, true)) return;
        if (st.step === 2 && !checkSettings()) return;
        st.step += 1;
        draw();
      });
      items.push(next);
    } else if (st.createBtn) {
      items.push(st.createBtn);
    }
    replace(nav, items);
  }

  // ---- step 2: model, method, adapter -------------------------------------
  let layersField = null; // {input, errEl, max} while the LoRA shape is shown

  // Parse the layers typed into st.lora; false when they are malformed. The
  // error shows on change and on Next (which also focuses the field), stays
  // up to date while shown and goes as soon as the text is good again.
  function checkLayers(show, focus) {
    if (!layersField) return true;
    const { input, errEl, max } = layersField;
    const v = parseLayers(st.layers, max);
    if (v) {
      st.lora.layers_to_transform = v;
      errEl.textContent = '';
      input.removeAttribute('aria-invalid');
      return true;
    }
    delete st.lora.layers_to_transform;
    if (show || errEl.textContent) {
      errEl.textContent = t('wizard.layers_bad', { value: st.layers.trim(), max: max ?? '…' });
      input.setAttribute('aria-invalid', 'true');
    }
    if (focus) input.focus();
    return false;
  }

  function modelPane() {
    const vers = versions.some((v) => v.ref === st.model) || !st.model || models.some((m) => m.id === st.model)
      ? versions : versions.concat([{ ref: st.model, ft: null }]);
    const sel = h('select', { id: uid('model'), required: true },
      h('option', { value: '' }, t('wizard.pick_model')),
      h('optgroup', { label: t('wizard.base_models') }, models.map((m) => h('option', { value: m.id }, m.id))),
      vers.length ? h('optgroup', { label: t('wizard.versions') },
        vers.map((v) => h('option', { value: v.ref }, v.ft ? `${v.ref} · ${v.ft}` : v.ref))) : null);
    sel.value = st.model;
    const about = h('div', { class: 'help' });
    const showModel = () => {
      const m = models.find((x) => x.id === sel.value);
      const v = versions.find((x) => x.ref === sel.value);
      if (m) {
        replace(about, m.description ? h('p', { dataset: { description: '' } }, m.description) : null,
          h('p', { class: 'muted' }, `${m.architecture} · ${fmtParams(m.parameter_count)} ${t('models.parameters')}`));
      } else if (sel.value) {
        replace(about, h('p', { dataset: { continues: sel.value } }, t('wizard.continues_version', { model: sel.value })),
          v ? h('p', { class: 'muted' }, `${v.base} · ${v.architecture} · ${fmtParams(v.parameter_count)} ${t('models.parameters')}`) : null);
      } else {
        replace(about);
      }
    };
    const radios = (name, values, cur, set) => h('div', { role: 'radiogroup', 'aria-label': t(`wizard.${name}`) },
      values.map((v) => {
        const r = h('input', { type: 'radio', name: uid(name), value: v, checked: v === cur });
        r.addEventListener('change', () => set(v));
        return h('label', { class: 'inline' }, r, t(`${name}.${v}`));
      }));
    const loraBox = h('div');
    const adapterRadios = h('div');
    const drawLora = () => {
      layersField = null;
      if (st.adapter === 'none') { replace(loraBox); return; }
      if (isVersion()) { replace(loraBox, h('p', { class: 'help' }, t('wizard.lora_from_version'))); return; }
      const ls = loraSchema(doc);
      const shape = ['r', 'alpha', 'dropout'].map((k) => {
        const d = describe(ls[k]);
        const inp = h('input', { type: 'number', step: d.type === 'integer' ? 1 : 'any', min: d.min, max: d.max,
          placeholder: d.def !== undefined ? String(d.def) : '', value: st.lora[k] ?? '', inputmode: 'decimal' });
        inp.addEventListener('input', () => { st.lora[k] = inp.value === '' ? '' : Number(inp.value); });
        return field(`lora.${k}`, inp, t(`lora.${k}`), uid(`lora-${k}`));
      });
      // target modules: none checked sends none (the trainer's default);
      // a job prefilled with other names (dotted paths) shows them too
      const chosen = new Set(st.lora.target_modules || []);
      const names = LINEARS.concat([...chosen].filter((m) => !LINEARS.includes(m)));
      const targets = h('fieldset', { dataset: { field: 'lora.target_modules' } }, h('legend', {}, 'lora.target_modules'),
        names.map((m) => {
          const box = h('input', { type: 'checkbox', name: 'target_modules', value: m, checked: chosen.has(m) });
          box.addEventListener('change', () => {
            if (box.checked) chosen.add(m); else chosen.delete(m);
            st.lora.target_modules = names.filter((x) => chosen.has(x));
          });
          return h('label', { class: 'inline' }, box, m);
        }),
        h('div', { class: 'help' }, t('lora.target_modules')));
      // layers to transform: checked as typed, refused by Next while malformed
      const id = uid('lora-layers');
      const layers = h('input', { type: 'text', id, value: st.layers, placeholder: '10-29', autocomplete: 'off', spellcheck: 'false',
        dataset: { field: 'lora.layers_to_transform' }, 'aria-describedby': `${id}-help ${id}-err` });
      const errEl = h('div', { class: 'err', id: `${id}-err`, 'aria-live': 'polite' });
      layersField = { input: layers, errEl, max: (ls.layers_to_transform.items || {}).maximum };
      layers.addEventListener('input', () => { st.layers = layers.value; checkLayers(false, false); });
      layers.addEventListener('change', () => checkLayers(true, false));
      replace(loraBox, h('div', { class: 'grid2' }, shape), targets,
        h('div', { class: 'field' }, h('label', { for: id }, 'lora.layers_to_transform'), layers,
          h('div', { class: 'help', id: `${id}-help` }, t('lora.layers_to_transform')), errEl));
      if (st.layers) checkLayers(false, false);
    };
    // a version is continued with LoRA or QLoRA only
    const drawAdapters = () => {
      if (isVersion() && st.adapter === 'none') st.adapter = 'lora';
      replace(adapterRadios, radios('adapter', isVersion() ? ['lora', 'qlora'] : ['lora', 'qlora', 'none'], st.adapter, (v) => { st.adapter = v; drawLora(); }));
      drawLora();
    };
    drawAdapters();
    sel.addEventListener('change', () => { st.model = sel.value; showModel(); drawAdapters(); drawNav(); });
    showModel();
    const suffix = h('input', { type: 'text', id: uid('suffix'), maxlength: 64, value: st.suffix });
    suffix.addEventListener('input', () => { st.suffix = suffix.value; });
    const registered = h('input', { type: 'text', id: uid('registered'), maxlength: 128, value: st.registered, autocomplete: 'off', dataset: { field: 'registered_model' } });
    registered.addEventListener('input', () => { st.registered = registered.value.trim(); });
    const fmt = st.train.dataset && st.train.dataset.format;
    return h('div', {},
      field(t('wizard.model'), sel, null), about,
      h('fieldset', {}, h('legend', {}, t('wizard.method')),
        radios('method', ['supervised', 'dpo'], st.method, (v) => { st.method = v; st.methodTouched = true; st.hp = {}; }),
        h('div', { class: 'help' }, t('wizard.method_help')),
        fmt ? h('div', { class: 'help' }, t('wizard.format_is', { format: fmt })) : null),
      h('fieldset', {}, h('legend', {}, t('wizard.adapter')),
        adapterRadios,
        h('div', { class: 'help' }, t('wizard.adapter_help')), loraBox),
      h('div', { class: 'grid2' }, field(t('wizard.suffix'), suffix, t('wizard.suffix_help')),
        field(t('wizard.registered_model'), registered, t('wizard.registered_model_help'))));
  }

  // ---- step 3: hyperparameters ---------------------------------------------
  const hpInputs = {};
  function hpControl(name, schema) {
    const d = describe(schema);
    const id = uid(`hp-${name}`);
    let ctl;
    const cur = st.hp[name];
    if (d.type === 'boolean') {
      ctl = h('select', { id },
        h('option', { value: '' }, d.def !== undefined ? t('wizard.default_is', { v: String(d.def) }) : t('wizard.default')),
        h('option', { value: 'true', selected: cur === true }, 'true'), h('option', { value: 'false', selected: cur === false }, 'false'));
      ctl.addEventListener('change', () => { st.hp[name] = ctl.value === '' ? '' : ctl.value === 'true'; });
    } else if (d.enum) {
      ctl = h('select', { id },
        h('option', { value: '' }, d.def !== undefined ? t('wizard.default_is', { v: String(d.def) }) : t('wizard.default')),
        d.enum.map((v) => h('option', { value: v, selected: cur === v }, v)));
      ctl.addEventListener('change', () => { st.hp[name] = ctl.value; });
    } else {
      const ph = d.def !== undefined ? (d.auto ? `auto (${d.def})` : String(d.def)) : (d.auto ? 'auto' : t('wizard.default'));
      ctl = h('input', { id, type: 'number', step: d.type === 'integer' ? 1 : 'any', min: d.min, max: d.max, placeholder: ph,
        value: cur ?? '', inputmode: d.type === 'integer' ? 'numeric' : 'decimal', dataset: { hp: name } });
      ctl.addEventListener('input', () => { st.hp[name] = ctl.value === '' ? '' : Number(ctl.value); });
    }
    const range = d.min !== undefined && d.max !== undefined ? ` (${d.exclusiveMin ? '>' : ''}${d.min} … ${d.max})` : '';
    const errEl = h('div', { class: 'err', id: `${id}-err`, 'aria-live': 'polite' });
    ctl.setAttribute('aria-describedby', `${id}-help ${id}-err`);
    hpInputs[name] = { d, errEl, ctl };
    return h('div', { class: 'field' }, h('label', { for: id }, h('code', {}, name)),
      ctl, h('div', { class: 'help', id: `${id}-help` }, `${t(`hp.${name}`)}${range}`), errEl);
  }

  function checkSettings() {
    let ok = true;
    for (const [name, { d, errEl, ctl }] of Object.entries(hpInputs)) {
      const v = st.hp[name];
      errEl.textContent = '';
      if (v === '' || v === undefined || typeof v !== 'number') continue;
      const bad = !Number.isFinite(v) || (d.type === 'integer' && !Number.isInteger(v))
        || (d.min !== undefined && (d.exclusiveMin ? v <= d.min : v < d.min)) || (d.max !== undefined && v > d.max);
      if (bad) {
        ok = false;
        errEl.textContent = t('wizard.out_of_range', { min: d.min, max: d.max });
        ctl.setAttribute('aria-invalid', 'true');
      } else {
        ctl.removeAttribute('aria-invalid');
      }
    }
    return ok;
  }

  function settingsPane() {
    for (const k of Object.keys(hpInputs)) delete hpInputs[k];
    const props = hpSchemas(doc, st.method);
    const names = Object.keys(props);
    const basic = names.filter((n) => BASIC.includes(n));
    const adv = names.filter((n) => !BASIC.includes(n));
    return h('div', {},
      h('p', { class: 'muted' }, t('wizard.settings_intro')),
      h('div', { class: 'grid2' }, basic.map((n) => hpControl(n, props[n]))),
      h('details', { open: adv.some((n) => st.hp[n] !== undefined && st.hp[n] !== '') },
        h('summary', {}, t('wizard.advanced')), h('div', { class: 'grid2' }, adv.map((n) => hpControl(n, props[n])))));
  }

  // ---- step 4: review and estimate ------------------------------------------
  function reviewPane() {
    const est = h('div', { dataset: { estimate: '' } }, loading());
    const create = h('button', { type: 'button', class: 'primary', dataset: { write: 'create-job' } }, t('wizard.create'));
    const b = request();
    create.addEventListener('click', async () => {
      create.disabled = true;
      replace(err);
      try {
        const job = await api('POST', '/v1/fine_tuning/jobs', b);
        ctx.go(`#/jobs/${job.id}`);
      } catch (e) {
        replace(err, errorBox(e));
        create.disabled = false;
      }
    });
    api('POST', '/v1/fine_tuning/jobs/estimate', b).then((e) => {
      const time = e.seconds !== null ? fmtDuration(e.seconds) : t('wizard.time_unknown');
      replace(est, h('div', { class: 'cards' },
        stat(t('wizard.est_examples'), fmtInt(e.training_examples)),
        stat(t('wizard.est_tokens_epoch'), fmtInt(e.training_tokens)),
        stat(t('wizard.est_total_tokens'), fmtInt(e.total_tokens)),
        stat(t('wizard.est_steps'), fmtInt(e.steps)),
        stat(t('wizard.est_time'), time),
        stat(t('wizard.est_gpu_memory'), fmtBytes(e.gpu_memory_bytes))),
      h('p', { class: 'muted small' }, t('wizard.est_basis', { epochs: e.hyperparameters.n_epochs, batch: e.hyperparameters.batch_size }),
        ' ', e.tokens_per_second !== null
          ? t('wizard.est_time_basis', { tps: fmtNum(e.tokens_per_second, 0), n: fmtInt(e.throughput_samples) })
          : t('wizard.est_time_none')));
    }).catch((e) => replace(est, errorBox(e)));
    st.createBtn = create;
    return h('div', {},
      h('h2', {}, t('wizard.estimate')), est,
      h('h2', {}, t('wizard.request')), h('pre', { dataset: { request: '' } }, JSON.stringify(b, null, 2)));
  }

  function draw() {
    drawSteps();
    replace(err);
    const s = STEPS[st.step];
    for (const [k, el] of Object.entries(panes)) el.hidden = k !== 'data';
    if (s === 'data') {
      panes.data.hidden = false;
      replace(body, panes.data);
    } else {
      panes.data.hidden = true;
      if (s === 'model' && !st.methodTouched) {
        const fmt = st.train.dataset && st.train.dataset.format;
        if (fmt) st.method = DPO_FORMATS.includes(fmt) ? 'dpo' : 'supervised';
      }
      replace(body, s === 'model' ? modelPane() : s === 'settings' ? settingsPane() : reviewPane());
    }
    drawNav();
    const first = body.querySelector('input, select, button');
    if (first && st.step > 0) first.focus();
  }

  async function start() {
    replace(root, h('h1', {}, t('wizard.title')), loading());
    let datasets = [];
    let from = null;
    try {
      const [d, ds, ms] = await Promise.all([spec(), api('GET', '/v1/datasets', null, { limit: 100 }), listAll('/v1/models')]);
      doc = d;
      datasets = ds.data;
      // base models to start from, fine-tuned ones (versions) to continue;
      // checkpoints are promoted to versions first (the registry)
      models = ms.filter((m) => (m.kind || 'base') === 'base');
      versions = ms.filter((m) => m.kind === 'fine-tuned' && m.registered_model && m.version).map((m) => ({
        ref: `${m.registered_model}/${m.version}`, ft: m.id, base: m.parent, architecture: m.architecture, parameter_count: m.parameter_count }));
      if (ctx.query.get('from')) from = await api('GET', `/v1/fine_tuning/jobs/${encodeURIComponent(ctx.query.get('from'))}`);
    } catch (e) {
      replace(root, h('h1', {}, t('wizard.title')), errorBox(e));
      return;
    }
    const onChange = () => drawNav();
    const train = dataPicker('training', datasets, st.train, onChange);
    const val = dataPicker('validation', datasets, st.val, onChange);
    panes.data = h('div', {}, train.el, val.el);
    const byFile = (f) => datasets.find((d) => d.file_id === f && d.status === 'valid');
    if (from) {
      st.model = from.model;
      st.method = from.method.type;
      st.methodTouched = true;
      st.adapter = from.adapter;
      st.lora = from.lora ? { r: from.lora.r, alpha: from.lora.alpha, dropout: from.lora.dropout } : {};
      if (from.lora && Array.isArray(from.lora.target_modules)) st.lora.target_modules = [...from.lora.target_modules];
      if (from.lora && from.lora.layers_to_transform !== undefined && from.lora.layers_to_transform !== null) {
        st.layers = layersText(from.lora.layers_to_transform);
        st.lora.layers_to_transform = parseLayers(st.layers);
      }
      st.suffix = from.user_provided_suffix || '';
      st.registered = from.registered_model || '';
      const hp = (from.method[from.method.type] || {}).hyperparameters || {};
      for (const [k, v] of Object.entries(hp)) if (v !== 'auto') st.hp[k] = v;
      train.preset(byFile(from.training_file), from.training_file);
      if (from.validation_file) val.preset(byFile(from.validation_file), from.validation_file);
    }
    if (ctx.query.get('model')) {
      st.model = ctx.query.get('model');
      if (isVersion() && st.adapter === 'none') st.adapter = 'lora';
    }
    if (!from && ctx.query.get('dataset')) {
      const ds = datasets.find((d) => d.id === ctx.query.get('dataset'));
      if (ds) train.preset(ds);
    }
    replace(root, h('h1', {}, t('wizard.title')),
      from ? h('p', { class: 'notice', dataset: { from: from.id } }, isVersion()
        ? t('wizard.continuing_version', { model: st.model, job: from.user_provided_suffix || from.id })
        : t('wizard.continuing', { job: from.user_provided_suffix || from.id })) : null,
      stepList, err, body, nav);
    draw();
  }
  start();
}
