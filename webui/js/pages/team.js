// team.js - the caller's team, its limits, and who the caller is.

import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { fmtNum, fmtTime, t } from '../i18n.js';
import { errorBox, facts, loading } from '../ui.js';

export async function mount(root, ctx) {
  replace(root, loading());
  try {
    const me = await api('GET', '/v1/me');
    const team = me.team;
    replace(root, h('h1', {}, team.name),
      h('div', { class: 'panel' }, facts([
        [t('team.id'), h('span', { class: 'mono' }, team.id)],
        [t('team.quota_gpus'), String(team.quota_gpus)],
        [t('team.max_concurrent_jobs'), String(team.max_concurrent_jobs)],
        [t('team.fair_share_weight'), fmtNum(team.fair_share_weight)],
        [t('team.created'), fmtTime(team.created_at)],
      ])),
      h('h2', {}, t('team.you')),
      h('div', { class: 'panel' }, facts([
        [t('team.role'), t(`role.${me.role}`)],
        [t('team.key_id'), h('span', { class: 'mono' }, me.key_id)],
        [t('team.key_name'), me.key_name || '—'],
      ]), h('p', { class: 'muted small' }, t(`team.role_help_${me.role}`))));
    ctx.title(team.name);
  } catch (e) {
    replace(root, errorBox(e));
  }
}
