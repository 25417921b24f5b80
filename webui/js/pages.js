// pages.js - the page table: every page of the console is one row here and
// one module in pages/. app.js routes by it, builds the navigation from it
// and shows a page only to keys whose role reaches the row's.
//
//   path    the hash route after "#/"; ":name" segments become params
//   module  the page module (loaded on first visit); it exports
//           mount(root, ctx) -> optional cleanup function
//   title   message key of the page title (document.title)
//   nav     message key of its navigation entry (none: reached by links)
//   group   navigation group ("admin" entries come last, after a divider)
//   role    least role that sees the page: viewer, member or admin
//
// Adding a page: a module in pages/, a row here, its keys in both i18n
// tables. See webui/README.md.

export const pages = [
  { path: 'signin', module: './pages/signin.js', title: 'signin.title', public: true },
  { path: 'jobs', module: './pages/jobs.js', title: 'jobs.title', nav: 'nav.jobs', role: 'viewer' },
  { path: 'jobs/:id', module: './pages/job.js', title: 'job.title', role: 'viewer', parent: 'jobs' },
  { path: 'new', module: './pages/wizard.js', title: 'wizard.title', nav: 'nav.new_job', role: 'member' },
  { path: 'datasets', module: './pages/datasets.js', title: 'datasets.title', nav: 'nav.datasets', role: 'viewer' },
  { path: 'datasets/:id', module: './pages/dataset.js', title: 'dataset.title', role: 'viewer', parent: 'datasets' },
  { path: 'models', module: './pages/models.js', title: 'models.title', nav: 'nav.models', role: 'viewer' },
  { path: 'registry', module: './pages/registry.js', title: 'registry.title', nav: 'nav.registry', role: 'viewer' },
  { path: 'registry/:name', module: './pages/regmodel.js', title: 'regmodel.title', role: 'viewer', parent: 'registry' },
  { path: 'registry/:name/:version', module: './pages/version.js', title: 'version.title', role: 'viewer', parent: 'registry' },
  { path: 'exports/:id', module: './pages/export.js', title: 'export.title', role: 'viewer', parent: 'registry' },
  { path: 'deployments', module: './pages/deployments.js', title: 'deploy.title', nav: 'nav.deployments', role: 'viewer' },
  { path: 'playground', module: './pages/playground.js', title: 'play.title', nav: 'nav.playground', role: 'member' },
  { path: 'experiments', module: './pages/experiments.js', title: 'exp.title', nav: 'nav.experiments', role: 'viewer' },
  { path: 'experiments/:id', module: './pages/experiment.js', title: 'exp.title_one', role: 'viewer', parent: 'experiments' },
  { path: 'evals', module: './pages/evals.js', title: 'eval.title', nav: 'nav.evals', role: 'viewer' },
  { path: 'evals/:id', module: './pages/eval.js', title: 'eval.title_one', role: 'viewer', parent: 'evals' },
  { path: 'drift', module: './pages/drift.js', title: 'drift.title', nav: 'nav.drift', role: 'viewer' },
  { path: 'drift/:id', module: './pages/monitor.js', title: 'drift.title_one', role: 'viewer', parent: 'drift' },
  { path: 'team', module: './pages/team.js', title: 'team.title', nav: 'nav.team', role: 'viewer' },
  { path: 'admin/keys', module: './pages/keys.js', title: 'keys.title', nav: 'nav.keys', group: 'admin', role: 'admin' },
  { path: 'admin/webhooks', module: './pages/webhooks.js', title: 'webhooks.title', nav: 'nav.webhooks', group: 'admin', role: 'viewer' },
  { path: 'admin/webhooks/:id', module: './pages/webhook.js', title: 'webhook.title', role: 'viewer', parent: 'admin/webhooks' },
  { path: 'admin/audit', module: './pages/audit.js', title: 'audit.title', nav: 'nav.audit', group: 'admin', role: 'admin' },
];

export const ROLES = ['viewer', 'member', 'admin'];

export function roleAtLeast(have, need) {
  return ROLES.indexOf(have) >= ROLES.indexOf(need || 'viewer');
}

// "#/jobs/ftjob-1?x=2" -> {page, params: {id}, query: URLSearchParams}
export function match(hash) {
  const raw = (hash || '').replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const segs = path.split('/').filter(Boolean);
  for (const p of pages) {
    const ps = p.path.split('/');
    if (ps.length !== segs.length) continue;
    const params = {};
    let ok = true;
    ps.forEach((s, i) => {
      if (s.startsWith(':')) params[s.slice(1)] = decodeURIComponent(segs[i]);
      else if (s !== segs[i]) ok = false;
    });
    if (ok) return { page: p, params, query: new URLSearchParams(qs || '') };
  }
  return null;
}
