// experiments.js - the team's A/B experiments (docs/evaluation.md, "A/B
// experiments"): name, status, arms; members create one from a name and
// arms (name, model reference, weight; the first arm is the control).

import { api, listAll } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtNum, fmtTime, t } from '../i18n.js';
import { badge, errorBox, field, loading, table, toast } from '../ui.js';

const MAX_ARMS = 16;

export function mount(root, ctx) {
  const list = h('div', {}, loading());
  const msg = h('div', { 'aria-live': 'assertive' });

  async function load() {
    try {
      const rows = await listAll('/v1/experiments');
      replace(list, table([
        { label: t('exp.name'), cell: (x) => h('a', { href: `#/experiments/${x.id}`, class: 'break' }, x.name) },
        { label: t('exp.status'), cell: (x) => badge(x.status) },
        { label: t('exp.arms'), cell: (x) => x.arms.map((a) => `${a.name} ${fmtNum(a.weight, 3)}`).join(' · ') },
        { label: t('exp.assignment'), cell: (x) => t(`exp.assign_${x.assignment}`) },
        { label: t('exp.created'), cell: (x) => h('span', { class: 'nowrap' }, fmtTime(x.created_at)) },
      ], rows, { empty: t('exp.none'), caption: t('exp.title') }));
    } catch (e) { replace(list, errorBox(e)); }
  }

  let form = null;
  if (ctx.can('member')) {
    const name = h('input', { type: 'text', id: uid('name'), required: true, maxlength: 128, autocomplete: 'off' });
    const assignment = h('select', { id: uid('assign') }, ['user', 'request'].map((a) => h('option', { value: a }, t(`exp.assign_${a}`))));
    const arms = h('div', { class: 'arms' });
    const addArm = (n, w) => {
      const row = h('fieldset', { class: 'arm' }, h('legend', {}, t('exp.arm_n', { n: arms.children.length + 1 })),
        h('div', { class: 'grid2' },
          field(t('exp.arm_name'), h('input', { type: 'text', name: 'arm-name', required: true, maxlength: 64, value: n, id: uid('arm') })),
          field(t('exp.arm_model'), h('input', { type: 'text', name: 'arm-model', required: true, placeholder: 'support-bot@production', id: uid('model') })),
          field(t('exp.arm_weight'), h('input', { type: 'number', name: 'arm-weight', required: true, min: 0, max: 1, step: 'any', value: w, id: uid('weight') }))));
      arms.append(row);
    };
    addArm('control', 0.5);
    addArm('candidate', 0.5);
    const more = h('button', { type: 'button', on: { click: () => { if (arms.children.length < MAX_ARMS) addArm('', ''); } } }, t('exp.add_arm'));
    form = h('form', { class: 'panel', dataset: { write: 'create-experiment' } }, h('h2', {}, t('exp.create')),
      h('div', { class: 'grid2' }, field(t('exp.name'), name), field(t('exp.assignment'), assignment, t('exp.assignment_help'))),
      h('p', { class: 'help' }, t('exp.arms_help')), arms,
      h('div', { class: 'row' }, more, h('button', { type: 'submit', class: 'primary' }, t('exp.create'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      const body = {
        name: name.value.trim(),
        assignment: assignment.value,
        arms: [...arms.children].map((f) => ({
          name: f.querySelector('[name=arm-name]').value.trim(),
          model: f.querySelector('[name=arm-model]').value.trim(),
          weight: Number(f.querySelector('[name=arm-weight]').value),
        })),
      };
      try {
        const x = await api('POST', '/v1/experiments', body);
        toast(t('exp.created_ok'));
        ctx.go(`#/experiments/${x.id}`);
      } catch (err) { replace(msg, errorBox(err)); }
    });
  }
  replace(root, h('h1', {}, t('exp.title')), msg, form, list);
  load();
}
