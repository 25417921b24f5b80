// deployments.js - the team's inference endpoints (ft-serve, vLLM,
// llama-server: admins add and delete them) and the deployments of model
// versions on them (members deploy a reference such as support@production
// and stop it). docs/deployments.md. Both lists are polled every few
// seconds while the tab is visible: the controller changes the states.

import { api, listAll } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { fmtInt, fmtTime, t } from '../i18n.js';
import { badge, confirmButton, errorBox, field, loading, table, toast } from '../ui.js';
import { versionLink } from '../registry.js';

const POLL_MS = 3000;
const KINDS = ['ftserve', 'vllm', 'llamacpp'];

export function mount(root, ctx) {
  const admin = ctx.can('admin');
  const member = ctx.can('member');
  const epList = h('div', {}, loading());
  const depList = h('div', {}, loading());
  const msg = h('div', { 'aria-live': 'assertive' });
  let endpoints = [];

  // the endpoint select of the deploy form, kept as chosen across polls
  const epSelect = h('select', { id: uid('endpoint'), required: true });
  function drawSelect() {
    const was = epSelect.value;
    replace(epSelect, endpoints.map((e) => h('option', { value: e.id, selected: e.id === was }, `${e.name} (${e.kind})`)));
  }

  function drawEndpoints() {
    replace(epList, table([
      { label: t('deploy.ep_name'), cell: (e) => h('strong', { class: 'break' }, e.name) },
      { label: t('deploy.ep_kind'), cell: (e) => h('code', {}, e.kind) },
      { label: t('deploy.ep_url'), cell: (e) => h('span', { class: 'mono break' }, e.url) },
      { label: t('deploy.ep_health'), cell: (e) => h('span', {}, badge(e.health, 'health'),
        e.health_reason ? h('span', { class: 'muted small break' }, ' ', e.health_reason) : null) },
      { label: t('deploy.ep_checked'), cell: (e) => fmtTime(e.checked_at) },
      { label: t('deploy.ep_deployments'), num: true, cell: (e) => fmtInt(e.deployments) },
      { label: '', cell: (e) => (admin ? confirmButton(t('deploy.ep_delete'), t('deploy.ep_delete_confirm', { name: e.name }), async () => {
        try {
          await api('DELETE', `/v1/endpoints/${encodeURIComponent(e.id)}`);
          toast(t('deploy.ep_deleted'));
          refresh();
        } catch (err) { replace(msg, errorBox(err)); }
      }, { dataset: { write: 'delete-endpoint' } }) : '') },
    ], endpoints, { empty: t('deploy.ep_none'), caption: t('deploy.endpoints') }));
  }

  function drawDeployments(deps) {
    replace(depList, table([
      { label: t('deploy.col_model'), cell: (d) => h('div', {},
        h('code', { class: 'break' }, d.model),
        d.version ? h('div', { class: 'small' }, versionLink(d.version.model, d.version.version)) : null) },
      { label: t('deploy.col_endpoint'), cell: (d) => d.endpoint.name },
      { label: t('deploy.col_status'), cell: (d) => h('div', { dataset: { deployment: d.id, status: d.status } }, badge(d.status),
        d.status_reason ? h('div', { class: 'muted small break' }, d.status_reason) : null) },
      { label: t('deploy.col_served'), cell: (d) => (d.served_names.length
        ? h('div', { class: 'chips' }, d.served_names.map((n) => h('code', { class: 'chip break' }, n))) : '—') },
      { label: t('deploy.col_created'), cell: (d) => h('span', { class: 'nowrap' }, fmtTime(d.created_at)) },
      { label: '', cell: (d) => h('div', { class: 'row' },
        d.status !== 'stopped' ? h('a', { href: `#/drift/${d.id}` }, t('deploy.drift')) : null,
        member && d.status !== 'stopped' ? confirmButton(t('deploy.stop'), t('deploy.stop_confirm'), async () => {
          try {
            await api('DELETE', `/v1/deployments/${encodeURIComponent(d.id)}`);
            toast(t('deploy.stopped'));
            refresh();
          } catch (err) { replace(msg, errorBox(err)); }
        }, { dataset: { write: 'stop-deployment' } }) : null) },
    ], deps, { empty: t('deploy.none'), caption: t('deploy.deployments') }));
  }

  async function refresh() {
    try {
      const [eps, deps] = await Promise.all([listAll('/v1/endpoints'), listAll('/v1/deployments')]);
      endpoints = eps;
      drawSelect();
      drawEndpoints();
      drawDeployments(deps.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1)));
    } catch (e) { replace(msg, errorBox(e)); }
  }

  let epForm = null;
  if (admin) {
    const name = h('input', { type: 'text', id: uid('name'), required: true, maxlength: 64, autocomplete: 'off' });
    const kind = h('select', { id: uid('kind') }, KINDS.map((k) => h('option', { value: k }, k)));
    const url = h('input', { type: 'url', id: uid('url'), required: true, placeholder: t('deploy.ep_url_placeholder') });
    const key = h('input', { type: 'password', id: uid('key'), autocomplete: 'off' });
    epForm = h('form', { class: 'panel', dataset: { write: 'create-endpoint' } }, h('h2', {}, t('deploy.ep_create')),
      h('div', { class: 'grid2' }, field(t('deploy.ep_name'), name), field(t('deploy.ep_kind'), kind, t('deploy.ep_kind_help')),
        field(t('deploy.ep_url'), url, t('deploy.ep_url_help')), field(t('deploy.ep_key'), key, t('deploy.ep_key_help'))),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('deploy.ep_create'))));
    epForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      const body = { name: name.value.trim(), kind: kind.value, url: url.value.trim() };
      if (key.value) body.api_key = key.value;
      try {
        await api('POST', '/v1/endpoints', body);
        toast(t('deploy.ep_created'));
        epForm.reset();
        refresh();
      } catch (err) { replace(msg, errorBox(err)); }
    });
  }

  let depForm = null;
  if (member) {
    const model = h('input', { type: 'text', id: uid('model'), required: true, placeholder: 'support-bot@production', autocomplete: 'off' });
    const logTexts = h('input', { type: 'checkbox', id: uid('logtexts') });
    depForm = h('form', { class: 'panel', dataset: { write: 'create-deployment' } }, h('h2', {}, t('deploy.create')),
      h('div', { class: 'grid2' }, field(t('deploy.col_endpoint'), epSelect), field(t('deploy.col_model'), model, t('deploy.model_help'))),
      h('label', { class: 'inline' }, logTexts, t('deploy.log_texts')),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, t('deploy.create'))));
    depForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      try {
        await api('POST', '/v1/deployments', { endpoint: epSelect.value, model: model.value.trim(), log_texts: logTexts.checked });
        toast(t('deploy.created'));
        model.value = '';
        refresh();
      } catch (err) { replace(msg, errorBox(err)); }
    });
  }

  replace(root, h('h1', {}, t('deploy.title')), msg,
    h('h2', {}, t('deploy.deployments')), depForm, depList,
    h('h2', {}, t('deploy.endpoints')), epForm, epList);
  refresh();
  const timer = setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  return () => clearInterval(timer);
}
