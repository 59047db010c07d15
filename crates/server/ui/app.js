// OpenLoom's dashboard: views over GET /api/state, live task events from
// GET /api/events, the task and session drawers, and the New task form.
// No framework: each view renders from the state into its container, and skips the
// work when what it shows has not changed (so focus and scroll stay put).

import { adoptTokenFromFragment, api, onUnauthorized, openEvents, setToken, token } from './api.js';
import {
  $, ago, badge, clock, compact, confirmButton, cost, debounce, empty, fill, h, minutes, num, pct,
  progressBar, segmented, shortPath, table, tabs, tick, timeAgo,
} from './dom.js';

const S = {
  state: null,
  tasks: new Map(),
  tasksVersion: -1,
  streamVersion: -1,
  view: 'dashboard',
  period: 'total',
  lastStateAt: NaN,
  conn: { name: 'connecting', detail: '' },
  drawer: null,
  opener: null,
  openDirs: new Set(),
};

const ACTIVE = new Set(['pending', 'running', 'waiting']);
const VIEWS = [['dashboard', 'Dashboard'], ['activity', 'Activity'], ['webhooks', 'Webhooks']];
const PERIODS = [['today', 'Today'], ['week', 'This week'], ['month', 'This month'], ['total', 'Total']];
const KINDS = [
  ['input', 'Input'], ['output', 'Output'], ['reasoning', 'Reasoning'], ['cacheRead', 'Cache read'], ['cacheWrite', 'Cache write'],
];

// ---------------------------------------------------------------- start-up

adoptTokenFromFragment();
onUnauthorized(() => showTokenPanel(true));

const refreshSoon = debounce(() => refreshState(), 300);
const drawerSoon = debounce(() => reloadDrawer(), 300);
// A task event may have queued a delivery; the sender takes a moment to send it.
const deliveriesSoon = debounce(() => refreshDeliveries(), 1000);
let events = null;

function start() {
  setupViews();
  setupTokenForm();
  setupNewTask();
  setupDrawer();
  renderConn();
  refreshState();
  setInterval(() => { if (!document.hidden) { refreshState(); refreshDeliveries(); } }, 5000);
  setInterval(tick, 1000);
  events = openEvents({ snapshot: onSnapshot, task: onTaskEvent, state: onConnState });
  // A #token=… pasted into an open tab changes only the fragment: no reload.
  window.addEventListener('hashchange', () => {
    if (!/(^#|&)token=/.test(location.hash)) return;
    adoptTokenFromFragment();
    refreshState();
    events.restart();
  });
}

// ---------------------------------------------------------------- data

async function refreshState() {
  let state;
  try {
    state = await api('GET', '/api/state');
  } catch (e) {
    if (e.status !== 401) notice(`Could not load the dashboard state: ${e.text}`, 'error');
    return;
  }
  showTokenPanel(false);
  notice('');
  S.state = state;
  S.lastStateAt = Date.now();
  mergeTasks(state.tasks || [], Number(state.store_version) || 0);
  renderAll();
}

/** The state's first page of tasks is as new as its store version. */
function mergeTasks(list, version) {
  if (version < S.tasksVersion) return;
  for (const task of list) S.tasks.set(task.id, task);
  S.tasksVersion = version;
}

/**
 * A snapshot comes on every (re)connect and again mid-stream whenever another
 * process (a second worker, `openloom watch`) changed the store: it replaces the
 * list, so changed tasks show their new state and deleted ones disappear.
 */
function onSnapshot(snapshot) {
  const version = Number(snapshot.store_version) || 0;
  S.streamVersion = version;
  if (version >= S.tasksVersion) {
    S.tasks = new Map((snapshot.tasks || []).map((t) => [t.id, t]));
    S.tasksVersion = version;
  }
  renderActivity();
  renderCounters();
  refreshSoon();
  // The open task may be one that changed elsewhere.
  if (S.drawer && S.drawer.kind === 'task') drawerSoon();
}

/** Applies a task event at once, then fetches the full records shortly after. */
function onTaskEvent(ev) {
  deliveriesSoon();
  const version = Number(ev.store_version) || 0;
  // Several events can share a version (updated then completed): apply all that are
  // newer than the snapshot, never dropping one for repeating the previous version.
  if (version <= S.streamVersion) return;
  const id = ev.task_id;
  const task = S.tasks.get(id);
  const at = ev.at || new Date().toISOString();
  switch (ev.type) {
    case 'deleted':
      S.tasks.delete(id);
      break;
    case 'created':
      if (!task) {
        S.tasks.set(id, {
          id, name: ev.name || id, workspace: ev.workspace || '', status: 'pending', progress: 0,
          completed_steps: [], created_at: at, updated_at: at, spec: { steps: [] }, last_summary: 'Created',
        });
      }
      break;
    default:
      if (task) {
        const patch = { updated_at: at };
        if (ev.type === 'started') Object.assign(patch, { status: 'running', active_session_id: ev.session_id, last_summary: ev.summary, last_check_at: at });
        if (ev.type === 'updated') Object.assign(patch, { status: ev.status, current_step: ev.current_step, progress: ev.progress, last_summary: ev.summary, last_check_at: at });
        if (ev.type === 'completed') Object.assign(patch, { status: 'completed', progress: ev.progress ?? 1, last_summary: ev.summary, last_check_at: at });
        if (ev.type === 'failed') Object.assign(patch, { status: 'failed', error: ev.error, last_summary: ev.error, last_check_at: at });
        if (ev.type === 'log_line') Object.assign(patch, { last_summary: ev.summary, last_check_at: at });
        for (const [k, v] of Object.entries(patch)) if (v !== undefined) task[k] = v;
      }
  }
  S.tasksVersion = Math.max(S.tasksVersion, version);
  renderActivity();
  renderCounters();
  refreshSoon();
  if (S.drawer && S.drawer.kind === 'task' && S.drawer.id === id) {
    if (ev.type === 'deleted') closeDrawer();
    else drawerSoon();
  }
}

function onConnState(name, detail = '') {
  S.conn = { name, detail };
  renderConn();
}

// ---------------------------------------------------------------- token

function setupTokenForm() {
  $('token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = $('token-input').value.trim();
    if (!value) return;
    setToken(value);
    $('token-error').textContent = '';
    try {
      await api('GET', '/api/state');
    } catch (err) {
      $('token-error').textContent = err.status === 401 ? 'That token was refused.' : err.text;
      return;
    }
    $('token-input').value = '';
    showTokenPanel(false);
    refreshState();
    if (events) events.restart();
  });
}

function showTokenPanel(show) {
  const panel = $('token-panel');
  if (panel.hidden === !show) return;
  panel.hidden = !show;
  document.body.classList.toggle('locked', show);
  // Nothing to do without the token: the form waits, out of the tab order.
  document.querySelector('.panel').inert = show;
  if (show) {
    $('view-dashboard').hidden = true;
    $('view-activity').hidden = true;
    $('token-error').textContent = token() ? 'The stored token was refused; enter the current one.' : '';
    $('token-input').focus();
  } else {
    showView(S.view);
  }
}

// ---------------------------------------------------------------- layout

function setupViews() {
  try {
    const saved = sessionStorage.getItem('openloom.view');
    S.view = VIEWS.some(([v]) => v === saved) ? saved : 'dashboard';
  } catch { /* storage disabled */ }
  const tabButtons = VIEWS.map(([v]) => $(`tab-${v}`));
  for (const [i, b] of tabButtons.entries()) {
    b.addEventListener('click', () => showView(b.id.slice(4)));
    b.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      e.preventDefault();
      const step = e.key === 'ArrowRight' ? 1 : tabButtons.length - 1;
      const other = tabButtons[(i + step) % tabButtons.length];
      showView(other.id.slice(4));
      other.focus();
    });
  }
  $('archived-sessions-link').addEventListener('click', () => {
    showView('activity');
    const fold = $('archived-sessions-fold');
    fold.open = true;
    fold.scrollIntoView({ block: 'start' });
    fold.querySelector('summary').focus();
  });
  showView(S.view);
}

function showView(view) {
  S.view = view;
  try { sessionStorage.setItem('openloom.view', view); } catch { /* ignore */ }
  const locked = !$('token-panel').hidden;
  for (const [v, title] of VIEWS) {
    const on = v === view;
    $(`tab-${v}`).setAttribute('aria-selected', String(on));
    $(`tab-${v}`).tabIndex = on ? 0 : -1;
    $(`view-${v}`).hidden = !on || locked;
    if (on) $('view-title').textContent = title;
  }
  if (view === 'webhooks' && !locked) refreshDeliveries();
}

// ---------------------------------------------------------------- webhooks

/** Loads the deliveries while their view is shown (task events and the 5 s refresh
 * call it too, so a delivery's status follows without a reload). */
async function refreshDeliveries() {
  if (S.view !== 'webhooks') return;
  let answer;
  try {
    answer = await api('GET', '/api/webhooks/deliveries?limit=100');
  } catch (e) {
    if (e.status !== 401) notice(`Could not load the webhook deliveries: ${e.text}`, 'error');
    return;
  }
  const list = answer.deliveries || [];
  $('delivery-count').textContent = list.length ? `${list.length}` : '';
  const key = list.map((d) => [d.id, d.status, d.attempts, d.lastError, d.nextAttemptAt]);
  renderKeyed($('deliveries-table'), key, () => list.length
    ? deliveriesTable(list)
    : empty('No webhook deliveries', 'Start openloom serve with --webhook URL (and OPENLOOM_WEBHOOK_SECRET set), or list webhooks: in the config file.'));
}

function deliveriesTable(list) {
  return table([
    { title: 'Event' }, { title: 'Task', cls: 'name' }, { title: 'Hook', cls: 'hook' }, { title: 'Status' },
    { title: 'Attempts', cls: 'nowrap' }, { title: 'Last error', cls: 'summary' }, { title: 'Queued', cls: 'nowrap' }, { title: '' },
  ], list.map((d) => ({
    id: d.id,
    data: { deliveryId: d.id, status: d.status },
    cells: [
      h('span', { class: 'mono small', text: d.event }),
      h('button', { type: 'button', class: 'link strong', text: d.task.name || d.task.id, onclick: (e) => openTask(d.task.id, e.currentTarget) }),
      h('span', { class: 'mono small clip', title: d.hookId, text: d.url }),
      badge(d.status),
      h('span', { class: 'mono small', text: String(d.attempts) }),
      h('span', { class: 'clip', title: d.lastError || '', text: d.lastError || '—' }),
      timeAgo(d.queuedAt),
      h('button', { type: 'button', class: 'redeliver', text: 'Redeliver', onclick: (e) => redeliver(d.id, e.currentTarget) }),
    ],
  })), { cls: 'deliveries' });
}

async function redeliver(id, button) {
  button.disabled = true;
  try {
    await api('POST', `/api/webhooks/deliveries/${encodeURIComponent(id)}/redeliver`);
    notice(`Delivery ${id} queued again`);
  } catch (e) {
    notice(`Could not queue ${id} again: ${e.text}`, 'error');
  }
  button.disabled = false;
  refreshDeliveries();
}

function notice(text, kind = 'info') {
  const el = $('notice');
  if (!text) {
    if (el.dataset.kind === 'error') el.hidden = true;
    return;
  }
  el.dataset.kind = kind;
  el.className = `notice ${kind}`;
  el.textContent = text;
  el.hidden = false;
  if (kind !== 'error') setTimeout(() => { if (el.textContent === text) el.hidden = true; }, 6000);
}

/** Renders `fn()` into `el` only when `key` changed since the last time. */
function renderKeyed(el, key, fn) {
  const sig = JSON.stringify(key);
  if (el.dataset.sig === sig) return;
  el.dataset.sig = sig;
  fill(el, fn());
}

function renderAll() {
  renderConn();
  renderSidebar();
  renderDashboard();
  renderActivity();
  renderCounters();
  renderTargetOptions();
}

function renderConn() {
  const { name, detail } = S.conn;
  const labels = { connecting: 'Connecting…', live: 'Live', retrying: 'Reconnecting', unauthorized: 'Token needed', stopped: 'Stopped' };
  $('conn-dot').className = `dot ${name}`;
  $('conn-text').textContent = labels[name] || name;
  $('conn-text').title = detail || '';
  const server = S.state && S.state.server;
  // A worker connected to several OpenCode servers names each; any one down shows.
  const servers = (S.state && S.state.servers) || (server ? [server] : []);
  const several = servers.length > 1;
  const down = servers.filter((s) => !s.ok);
  const said = (s) => (several ? `${s.name}: ${s.message}` : s.message);
  $('oc-url').textContent = several
    ? `OpenCode ${servers.map((s) => `${s.name} ${s.url}`).join(' · ')}`
    : server ? `OpenCode ${server.url}` : 'OpenCode: —';
  $('oc-url').title = $('oc-url').textContent;
  $('oc-health').title = down.map(said).join('\n') || (server && server.message) || '';
  $('oc-health').textContent = name === 'retrying' && detail ? `Events: ${detail}` : server
    ? (down.length ? said(down[0]) : `Healthy${server.version ? ` · v${server.version}` : ''}`) : 'Waiting for the first state…';
  const badgeEl = $('health-badge');
  if (server) {
    badgeEl.className = `badge ${down.length ? 'bad' : 'ok'}`;
    badgeEl.textContent = !down.length ? 'Healthy'
      : several ? `OpenCode ${down.map((s) => s.name).join(', ')} unreachable` : 'OpenCode unreachable';
    badgeEl.title = down.map(said).join('\n') || server.message || '';
  }
  fill($('updated-ago'), timeAgo(S.lastStateAt));
}

function renderSidebar() {
  const recent = (S.state && S.state.recentWorkspaces) || [];
  renderKeyed($('recent-list'), recent, () => recent.length
    ? recent.map((path) => h('li', null, h('button', {
      type: 'button', class: 'side-item', title: `New task in ${path}`,
      onclick: () => useWorkspace(path),
    }, h('span', { class: 'folder', 'aria-hidden': 'true' }), h('span', { class: 'side-name', text: shortPath(path) }))))
    : h('li', { class: 'muted small side-empty', text: 'Workspaces you start tasks in appear here.' }));
  $('archived-sessions-count').textContent = String(((S.state && S.state.archivedSessions) || []).length);
}

// ---------------------------------------------------------------- dashboard

function periodUsage() {
  const periods = S.state && S.state.usage && S.state.usage.periods;
  return periods ? periods[S.period] : null;
}

function renderDashboard() {
  const st = S.state;
  if (!st) return;
  const m = st.metrics || {};
  const usage = periodUsage() || {};
  const totals = usage.totalTokens || {};
  const sessions = st.sessions || [];
  const taskTotal = Object.values(m.byStatus || {}).reduce((a, b) => a + (Number(b) || 0), 0);
  const cacheBase = (totals.input || 0) + (totals.cacheRead || 0);
  renderKeyed($('overview-cards'), [sessions.length, m, usage.tokenTotal, usage.totalCost, totals, S.period, usage.cacheEfficiency], () => [
    card('Sessions', num(sessions.length), `${m.sessionsBusy || 0} busy · ${m.sessionsIdle || 0} idle · ${m.sessionsRetry || 0} retry`),
    card('Tasks', num(taskTotal), `${m.running || 0} running · ${m.waiting || 0} waiting`),
    card('Total tokens', compact(usage.tokenTotal), `${pct(usage.cacheEfficiency)} cache · est. ${cost(usage.totalCost)}`, 'accent'),
    card('Cache read', compact(totals.cacheRead), cacheBase ? `${pct((totals.cacheRead || 0) / cacheBase)} of input + cache` : 'no input yet'),
  ]);
  const periods = (st.usage && st.usage.periods) || {};
  const periodKey = PERIODS.map(([k]) => [k, periods[k] && periods[k].tokenTotal, periods[k] && periods[k].totalCost, periods[k] && periods[k].sessionsWithUsage]);
  renderKeyed($('period-cards'), [periodKey, S.period], () => PERIODS.map(([key, label]) => {
    const p = periods[key] || {};
    return h('button', {
      type: 'button', class: `card stat period${key === S.period ? ' selected' : ''}`, 'aria-pressed': String(key === S.period),
      title: `Show ${label.toLowerCase()} below`, onclick: () => { S.period = key; renderDashboard(); },
    }, h('span', { class: 'stat-label', text: label }), h('span', { class: 'stat-value', text: compact(p.tokenTotal) }),
    h('span', { class: 'stat-sub', text: `est. ${cost(p.totalCost)} · ${p.sessionsWithUsage || 0}/${p.sessionCount || 0} sessions` }));
  }));
  const label = PERIODS.find(([k]) => k === S.period)[1];
  renderKeyed($('token-breakdown'), [totals, label], () => {
    const sum = KINDS.reduce((a, [k]) => a + (Number(totals[k]) || 0), 0);
    const bar = h('div', { class: 'stack', role: 'img', 'aria-label': 'Token breakdown' });
    for (const [k] of KINDS) {
      const v = Number(totals[k]) || 0;
      if (!v) continue;
      const seg = h('span', { class: `seg-${k}`, title: `${k}: ${num(v)}` });
      seg.style.width = `${(v / sum) * 100}%`;
      bar.appendChild(seg);
    }
    return [
      h('div', { class: 'card-head' }, h('h3', { text: `Token breakdown · ${label}` }), h('span', { class: 'muted small', text: `${num(sum)} tokens` })),
      sum ? bar : h('div', { class: 'stack empty-bar' }),
      h('ul', { class: 'legend' }, KINDS.map(([k, name]) => h('li', null, h('span', { class: `swatch seg-${k}` }), h('span', { text: name }), h('span', { class: 'mono', text: num(totals[k]) })))),
    ];
  });
  const models = usage.byModel || [];
  $('by-model-count').textContent = models.length ? String(models.length) : '';
  renderKeyed($('by-model'), models, () => models.length
    ? table([
      { title: 'Model' }, { title: 'Sessions', cls: 'num' }, { title: 'Input', cls: 'num' }, { title: 'Output', cls: 'num' },
      { title: 'Cache read', cls: 'num' }, { title: 'Total tokens', cls: 'num' }, { title: 'Est. cost', cls: 'num' },
    ], models.map((row) => ({
      cells: [h('span', { class: 'mono', text: row.model }), num(row.sessionCount), num(row.tokens && row.tokens.input), num(row.tokens && row.tokens.output),
        num(row.tokens && row.tokens.cacheRead), num(row.totalTokens), cost(row.cost)],
    })))
    : empty('No usage in this period', 'Token usage appears once an OpenCode session has answered.'));
  const top = usage.topSessions || [];
  $('top-count').textContent = top.length ? String(top.length) : '';
  renderKeyed($('top-sessions'), top, () => top.length
    ? table([{ title: 'Title' }, { title: 'Model' }, { title: 'Tokens', cls: 'num' }, { title: 'Est. cost', cls: 'num' }],
      top.map((row) => ({
        id: row.id,
        cells: [h('div', null, h('button', { type: 'button', class: 'link', text: row.title || row.id, onclick: (e) => openSession(row.id, e.currentTarget) }),
          h('div', { class: 'mono small muted', text: row.directory })), h('span', { class: 'mono', text: row.model }), num(row.totalTokens), cost(row.cost)],
      })), { onRow: (row) => openSession(row.id) })
    : empty('No sessions with usage yet', 'Start a task: its session shows up here with its tokens and cost.'));
}

function card(label, value, sub, cls = '') {
  return h('div', { class: `card stat ${cls}` }, h('span', { class: 'stat-label', text: label }), h('span', { class: 'stat-value', text: value }), h('span', { class: 'stat-sub', text: sub }));
}

function renderCounters() {
  const st = S.state;
  const counts = {};
  for (const t of S.tasks.values()) counts[t.status] = (counts[t.status] || 0) + 1;
  const by = (st && st.metrics && st.metrics.byStatus) || counts;
  const m = (st && st.metrics) || {};
  const items = [
    ['running', (by.running || 0) + (by.pending || 0)], ['waiting', by.waiting || 0], ['paused', by.paused || 0],
    ['failed', by.failed || 0], ['completed', by.completed || 0], ['archived', by.archived || 0],
    ['busy', m.sessionsBusy || 0, 'sessions busy'], ['idle', m.sessionsIdle || 0, 'sessions idle'], ['retry', m.sessionsRetry || 0, 'sessions retrying'],
  ];
  renderKeyed($('status-counters'), items, () => items.map(([k, v, label]) => h('div', { class: `counter c-${k}` },
    h('span', { class: 'counter-value', text: num(v) }), h('span', { class: 'counter-label', text: label || k }))));
}

// ---------------------------------------------------------------- activity

function sortedTasks() {
  return [...S.tasks.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
}

function stepsOf(task) {
  // Lists carry a summarised spec (`step_count`); a task's own page the full one.
  const spec = task.spec || {};
  const total = spec.step_count ?? ((spec.steps && spec.steps.length) || 0);
  const done = (task.completed_steps || []).length;
  return { total, done };
}

function renderActivity() {
  const all = sortedTasks();
  const live = all.filter((t) => t.status !== 'archived');
  const archived = all.filter((t) => t.status === 'archived');
  $('task-count').textContent = live.length ? `${live.length}` : '';
  const key = (t) => [t.id, t.name, t.status, t.progress, t.completed_steps, t.workspace, t.last_summary, t.last_check_at, t.check_interval_seconds, stepsOf(t).total, (t.pending_requests || []).map((r) => r.id)];
  renderKeyed($('tasks-table'), live.map(key), () => live.length
    ? taskTable(live)
    : empty('No tasks yet', 'Start one with the New task form: pick a workspace, write a prompt, press Start task.'));
  $('archived-task-count').textContent = String(archived.length);
  renderKeyed($('archived-tasks'), archived.map(key), () => archived.length
    ? taskTable(archived)
    : empty('Nothing archived', 'Archive a finished task from its drawer to move it here; only archived tasks can be deleted.'));
  renderSessions();
}

function taskTable(tasks) {
  return table([
    { title: 'Name', cls: 'name' }, { title: 'Status' }, { title: 'Steps' }, { title: 'Workspace' },
    { title: 'Last check', cls: 'summary' }, { title: 'Checked', cls: 'nowrap' }, { title: 'Interval', cls: 'nowrap' },
  ], tasks.map((t) => {
    const { total, done } = stepsOf(t);
    return {
      id: t.id,
      data: { taskId: t.id, status: t.status },
      cells: [
        h('button', { type: 'button', class: 'link strong', text: t.name || t.id, onclick: (e) => openTask(t.id, e.currentTarget) }),
        h('span', { class: 'status-cell' }, badge(t.status), asksBadge(t)),
        progressBar(done, total, t.progress),
        h('span', { class: 'mono small', title: t.workspace, text: shortPath(t.workspace) }),
        h('span', { class: 'clip', title: t.last_summary || '', text: t.last_summary || '—' }),
        timeAgo(t.last_check_at),
        h('span', { class: 'mono small', text: minutes(t.check_interval_seconds) }),
      ],
    };
  }), { onRow: (row) => openTask(row.id), cls: 'tasks' });
}

function renderSessions() {
  const st = S.state;
  const groups = (st && st.sessionsByDirectory) || [];
  const status = (st && st.sessionStatus) || {};
  const count = groups.reduce((a, g) => a + g.sessions.length, 0);
  $('session-count').textContent = count ? `${count} across ${groups.length} folder${groups.length === 1 ? '' : 's'}` : '';
  renderKeyed($('sessions-groups'), [groups.map((g) => [g.directory, g.sessions.map((s) => [s.id, s.title, s.updated_at])]), status, st ? Boolean(st.monitorRefreshedAt) : null], () => {
    if (!st || (!groups.length && !st.monitorRefreshedAt)) return empty('Loading sessions…', 'The session monitor reads OpenCode every few seconds.');
    if (!groups.length) {
      return empty('No OpenCode sessions', st.server && !st.server.ok
        ? `OpenCode is not reachable (${st.server.message}). Start it (opencode serve) or check OPENLOOM_OPENCODE_URL.`
        : 'Sessions appear when a task starts or when you use OpenCode in a folder.');
    }
    return groups.map((g, i) => {
      const open = S.openDirs.has(g.directory) || (S.openDirs.size === 0 && i === 0);
      const details = h('details', { class: 'group', open },
        h('summary', null, h('span', { class: 'mono', text: g.directory }), h('span', { class: 'count', text: String(g.sessions.length) })),
        table([{ title: 'Title', cls: 'name' }, { title: 'State' }, { title: 'Updated', cls: 'nowrap' }, { title: 'Id' }],
          g.sessions.map((s) => ({
            id: s.id,
            cells: [h('button', { type: 'button', class: 'link', text: s.title || s.id, onclick: (e) => openSession(s.id, e.currentTarget) }),
              h('span', { class: `pill s-${status[s.id] || 'idle'}`, text: status[s.id] || 'idle' }), timeAgo(s.updated_at), h('span', { class: 'mono small muted', text: s.id })],
          })), { onRow: (row) => openSession(row.id) }));
      details.addEventListener('toggle', () => {
        if (details.open) S.openDirs.add(g.directory);
        else S.openDirs.delete(g.directory);
      });
      if (open) S.openDirs.add(g.directory);
      return details;
    });
  });
  const archived = (st && st.archivedSessions) || [];
  $('archived-session-count').textContent = String(archived.length);
  renderKeyed($('archived-sessions'), archived, () => archived.length
    ? table([{ title: 'Title', cls: 'name' }, { title: 'Folder' }, { title: 'Archived', cls: 'nowrap' }, { title: '' }],
      archived.map((s) => ({
        id: s.id,
        cells: [h('button', { type: 'button', class: 'link', text: s.title || s.id, onclick: (e) => openSession(s.id, e.currentTarget) }),
          h('span', { class: 'mono small', text: s.directory }), timeAgo(s.archived_at),
          h('button', { type: 'button', class: 'small-btn', text: 'Unarchive', onclick: (e) => sessionAction(s.id, 'unarchive', e.currentTarget) })],
      })))
    : empty('No archived sessions', 'Archive a session from its drawer to hide it from the lists above.'));
}

async function sessionAction(id, action, button) {
  if (button) button.disabled = true;
  try {
    if (action === 'delete') await api('DELETE', `/api/sessions/${encodeURIComponent(id)}`);
    else await api('POST', `/api/sessions/${encodeURIComponent(id)}/${action}`);
    notice(`Session ${action === 'delete' ? 'deleted' : `${action}d`}.`, 'ok');
    await refreshState();
    return true;
  } catch (e) {
    if (S.drawer && S.drawer.kind === 'session' && S.drawer.id === id) $('drawer-error').textContent = e.text;
    else notice(`Could not ${action} the session: ${e.text}`, 'error');
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------- drawer

function setupDrawer() {
  $('drawer-close').addEventListener('click', closeDrawer);
  $('scrim').addEventListener('click', closeDrawer);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && S.drawer) {
      e.preventDefault();
      closeDrawer();
    }
    if (e.key === 'Tab' && S.drawer) trapFocus(e);
  });
}

function trapFocus(e) {
  const focusable = [...$('drawer').querySelectorAll('button:not([disabled]), [href], input, select, textarea, summary, [tabindex="0"]')]
    .filter((el) => el.offsetParent !== null);
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
  else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
}

function showDrawer(opener) {
  const drawer = $('drawer');
  if (drawer.hidden) S.opener = opener || document.activeElement;
  drawer.hidden = false;
  $('scrim').hidden = false;
  $('drawer-error').textContent = '';
  $('drawer-close').focus();
}

function closeDrawer() {
  S.drawer = null;
  $('drawer').hidden = true;
  $('scrim').hidden = true;
  const opener = S.opener;
  S.opener = null;
  if (opener && document.contains(opener)) opener.focus();
}

function reloadDrawer() {
  if (!S.drawer) return;
  if (S.drawer.kind === 'task') loadTask();
  else loadSession();
}

function drawerHead(kind, title, sub, meta) {
  $('drawer-kind').textContent = kind;
  $('drawer-title').textContent = title;
  $('drawer-sub').textContent = sub || '';
  fill($('drawer-meta'), meta);
}

// ---- task drawer

function openTask(id, opener) {
  const task = S.tasks.get(id);
  S.drawer = { kind: 'task', id, tab: 'overview', detail: null };
  showDrawer(opener);
  drawerHead('Task', task ? task.name : id, task ? task.workspace : '', task ? badge(task.status) : null);
  fill($('drawer-body'), h('div', { class: 'muted pad', text: 'Loading…' }));
  fill($('drawer-actions'));
  tabs($('drawer-tabs'), [['overview', 'Overview'], ['log', 'Check log'], ['spec', 'Spec']], 'overview', (tab) => {
    S.drawer.tab = tab;
    renderTaskBody();
  });
  loadTask();
}

async function loadTask() {
  const d = S.drawer;
  if (!d || d.kind !== 'task') return;
  const id = d.id;
  try {
    const first = await api('GET', `/api/tasks/${encodeURIComponent(id)}?log_limit=200`);
    let log = first.log || [];
    let cursor = first.log_next_cursor;
    for (let page = 0; cursor !== null && cursor !== undefined && page < 10; page += 1) {
      const more = await api('GET', `/api/tasks/${encodeURIComponent(id)}?log_limit=200&log_after=${encodeURIComponent(cursor)}`);
      log = log.concat(more.log || []);
      cursor = more.log_next_cursor;
    }
    if (!S.drawer || S.drawer.id !== id) return;
    S.drawer.detail = { task: first.task, log };
    S.tasks.set(id, first.task);
    renderTaskDrawer();
  } catch (e) {
    if (!S.drawer || S.drawer.id !== id) return;
    $('drawer-error').textContent = e.text;
  }
}

function renderTaskDrawer() {
  const { task } = S.drawer.detail;
  const { total, done } = stepsOf(task);
  drawerHead('Task', task.name, task.workspace, [badge(task.status), h('span', { class: 'mono small', text: `every ${minutes(task.check_interval_seconds)}` }),
    h('span', { class: 'small', text: total ? `${done}/${total} steps` : pct(task.progress) })]);
  renderTaskBody();
  renderTaskActions(task);
}

function renderTaskBody() {
  const d = S.drawer;
  if (!d || !d.detail) return;
  const { task, log } = d.detail;
  const spec = task.spec || {};
  const body = $('drawer-body');
  if (d.tab === 'overview') {
    const steps = spec.steps || [];
    const current = steps[task.current_step];
    fill(body, pendingRequests(task), h('dl', { class: 'facts' },
      fact('Status', badge(task.status)),
      fact('Driven by', task.driven_by ? h('span', { class: 'mono', text: task.driven_by }) : h('span', { class: 'muted', text: 'no worker now' })),
      task.opencode ? fact('OpenCode', h('span', { class: 'mono', text: task.opencode })) : null,
      fact('Progress', progressBar((task.completed_steps || []).length, steps.length, task.progress)),
      fact('Last check', h('div', null, h('div', { class: 'pre', text: task.last_summary || '—' }), timeAgo(task.last_check_at))),
      fact('Next up', current ? `Step ${Number(task.current_step) + 1}: ${current.title}` : (ACTIVE.has(task.status) ? 'Final verification' : '—')),
      fact('Next check', task.next_check_at ? timeAgo(task.next_check_at) : '—'),
      task.error ? fact('Error', h('div', { class: 'pre error-text', text: task.error })) : null,
      task.verification_rounds ? fact('Verification rounds', num(task.verification_rounds)) : null,
      fact('Session', task.active_session_id
        ? h('button', { type: 'button', class: 'link mono', text: task.active_session_id, onclick: () => openSession(task.active_session_id) })
        : h('span', { class: 'muted', text: 'none yet' })),
      fact('Created', h('span', null, clock(task.created_at), ' · ', timeAgo(task.created_at))),
      fact('Task id', h('span', { class: 'mono small', text: task.id })),
    ));
  } else if (d.tab === 'log') {
    const rows = [...log].reverse();
    fill(body, rows.length
      ? h('ol', { class: 'log', 'aria-label': 'Check log, newest first' }, rows.map((entry) => h('li', { class: 'log-entry' },
        h('div', { class: 'log-head' }, h('time', { class: 'mono small', datetime: entry.at, title: clock(entry.at), text: clock(entry.at) }), badge(entry.status),
          h('span', { class: 'muted small', dataset: { ago: entry.at }, text: ago(entry.at) }),
          entry.repeats > 1 ? h('span', { class: 'muted small', title: entry.last_at ? clock(entry.last_at) : '', text: `×${num(entry.repeats)}${entry.last_at ? `, last ${clock(entry.last_at)}` : ''}` }) : null),
        h('div', { class: 'pre', text: entry.summary || '' }),
        entry.detail || entry.evidence ? h('details', { class: 'evidence' }, h('summary', { text: 'Evidence' }),
          entry.detail ? h('pre', { text: entry.detail }) : null,
          entry.evidence ? h('pre', { text: JSON.stringify(entry.evidence, null, 2) }) : null) : null)))
      : empty('No checks yet', 'The first entry appears when the harness starts the task.'));
  } else {
    fill(body, h('div', { class: 'spec' },
      h('h3', { text: 'Goal' }), h('div', { class: 'pre', text: spec.goal || '—' }),
      h('h3', { text: 'Steps' }), (spec.steps || []).length
        ? h('ol', { class: 'steps' }, spec.steps.map((s, i) => h('li', { class: (task.completed_steps || []).includes(i) ? 'done' : '' },
          h('div', { class: 'step-title', text: s.title }),
          (s.acceptance || []).length ? h('ul', { class: 'acc' }, s.acceptance.map((a) => h('li', { text: a }))) : null,
          (s.checks || []).length ? h('ul', { class: 'checks' }, s.checks.map((c) => h('li', { class: 'mono small', text: checkText(c) }))) : null)))
        : h('p', { class: 'muted', text: 'No steps: the goal is the whole task.' }),
      h('h3', { text: 'Acceptance' }), (spec.acceptance || []).length
        ? h('ul', { class: 'acc' }, spec.acceptance.map((a) => h('li', { text: a })))
        : h('p', { class: 'muted', text: 'None' }),
      (spec.checks || []).length ? [h('h3', { text: 'Checks' }), h('ul', { class: 'checks' }, spec.checks.map((c) => h('li', { class: 'mono small', text: checkText(c) })))] : null,
      spec.initial_prompt ? [h('h3', { text: 'Prompt' }), h('div', { class: 'pre', text: spec.initial_prompt })] : null,
    ));
  }
}

// ---- requests the agent waits on (permissions, questions)

/** The task list's badge for a task waiting on a person: how many requests. */
function asksBadge(task) {
  const n = (task.pending_requests || []).length;
  if (!n) return null;
  const what = (task.pending_requests || []).map((r) => (r.kind === 'permission' ? `permission: ${r.permission}` : 'question')).join(', ');
  return h('span', { class: 'badge asks', title: `Waiting for you — ${what}`, dataset: { pending: String(n) }, text: n === 1 ? 'answer needed' : `${n} answers needed` });
}

/** Each pending request with its details and the buttons that answer it. */
function pendingRequests(task) {
  const pending = task.pending_requests || [];
  if (!pending.length) return null;
  return h('section', { class: 'requests', 'aria-label': 'Waiting for you' },
    h('h3', { text: pending.length === 1 ? 'The agent waits for your answer' : `The agent waits for ${pending.length} answers` }),
    pending.map((r) => (r.kind === 'permission' ? permissionRequest(task, r) : questionRequest(task, r))));
}

function permissionRequest(task, r) {
  const message = h('input', { type: 'text', class: 'deny-message', placeholder: 'Optional: tell the agent why (it then carries on)', 'aria-label': 'Message with Deny' });
  const send = (body) => (e) => answerRequest(task.id, r.id, body, e.currentTarget);
  return h('div', { class: 'request', dataset: { requestId: r.id, kind: 'permission' } },
    h('div', { class: 'request-what' }, h('span', { class: 'strong', text: `Permission: ${r.permission || '?'}` }), h('span', { class: 'mono small muted', text: r.id })),
    (r.patterns || []).length ? h('ul', { class: 'patterns' }, r.patterns.map((p) => h('li', { class: 'mono pre', text: p }))) : null,
    h('div', { class: 'request-actions' },
      h('button', { type: 'button', class: 'primary', dataset: { answer: 'allow' }, text: 'Allow', onclick: send({ reply: 'allow' }) }),
      h('button', { type: 'button', dataset: { answer: 'always' }, title: 'Also allow matching requests later (every session of the project)', text: 'Always', onclick: send({ reply: 'always' }) }),
      h('button', { type: 'button', class: 'danger', dataset: { answer: 'deny' }, text: 'Deny',
        onclick: (e) => answerRequest(task.id, r.id, message.value.trim() ? { reply: 'deny', message: message.value.trim() } : { reply: 'deny' }, e.currentTarget) }),
      message));
}

function questionRequest(task, r) {
  const questions = r.questions || [];
  // One choice per question; a single question is sent on its option's click.
  const chosen = questions.map(() => null);
  const sendAll = h('button', { type: 'button', class: 'primary', text: 'Send answers', disabled: true,
    onclick: (e) => answerRequest(task.id, r.id, { answers: chosen.map((c) => [c]) }, e.currentTarget) });
  const pick = (i, value, button) => {
    if (questions.length === 1) {
      answerRequest(task.id, r.id, { answers: [[value]] }, button);
      return;
    }
    chosen[i] = value;
    for (const b of button.parentElement.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b === button));
    sendAll.disabled = chosen.some((c) => !c);
  };
  return h('div', { class: 'request', dataset: { requestId: r.id, kind: 'question' } },
    h('div', { class: 'request-what' }, h('span', { class: 'strong', text: questions.length === 1 ? 'Question' : `${questions.length} questions` }), h('span', { class: 'mono small muted', text: r.id })),
    questions.map((q, i) => {
      const options = q.options || [];
      const free = h('input', { type: 'text', 'aria-label': 'Your answer', placeholder: 'Your answer' });
      return h('div', { class: 'question' },
        h('div', { class: 'pre', text: q.question || '' }),
        h('div', { class: 'request-actions' }, options.length
          ? options.map((o) => h('button', { type: 'button', class: 'option', dataset: { option: o }, text: o, onclick: (e) => pick(i, o, e.currentTarget) }))
          : [free, h('button', { type: 'button', text: 'Use this answer', onclick: (e) => { if (free.value.trim()) pick(i, free.value.trim(), e.currentTarget); } })]));
    }),
    h('div', { class: 'request-actions' },
      questions.length > 1 ? sendAll : null,
      h('button', { type: 'button', class: 'danger', dataset: { answer: 'dismiss' }, title: 'The agent\'s turn stops', text: 'Dismiss', onclick: (e) => answerRequest(task.id, r.id, { dismiss: true }, e.currentTarget) })));
}

async function answerRequest(taskId, requestId, body, button) {
  $('drawer-error').textContent = '';
  const box = button.closest('.request');
  const buttons = box ? [...box.querySelectorAll('button')] : [button];
  for (const b of buttons) b.disabled = true;
  try {
    const answer = await api('POST', `/api/tasks/${encodeURIComponent(taskId)}/requests/${encodeURIComponent(requestId)}`, { ...body, via: 'dashboard' });
    if (answer && answer.task) S.tasks.set(taskId, answer.task);
    notice(answer && answer.summary ? answer.summary : 'Answered.', 'ok');
    renderActivity();
    await loadTask();
    refreshSoon();
  } catch (e) {
    const text = `Answer refused: ${e.text}`;
    if (S.drawer && S.drawer.id === taskId) $('drawer-error').textContent = text;
    else notice(text, 'error');
    // No longer pending: show the task as it is now.
    if (e.status === 409 || e.status === 404) await loadTask();
    else for (const b of buttons) if (document.contains(b)) b.disabled = false;
  }
}

function checkText(check) {
  if (!check || typeof check !== 'object') return String(check);
  const { kind, ...rest } = check;
  const main = rest.run || rest.path || rest.pattern || '';
  return `${kind || 'check'}: ${main || JSON.stringify(rest)}`;
}

function fact(label, value) {
  return [h('dt', { text: label }), h('dd', null, value)];
}

function renderTaskActions(task) {
  const s = task.status;
  const act = (label, action, disabled) => h('button', {
    type: 'button', text: label, disabled, dataset: { action },
    onclick: (e) => taskAction(task.id, action, e.currentTarget),
  });
  fill($('drawer-actions'),
    task.active_session_id ? h('button', { type: 'button', text: 'View session', onclick: () => openSession(task.active_session_id) }) : null,
    act('Pause', 'pause', s === 'paused' || s === 'archived'),
    act('Resume', 'resume', s === 'running' || s === 'pending' || s === 'archived'),
    act('Complete', 'complete', s === 'completed' || s === 'archived'),
    act('Archive', 'archive', s === 'archived'),
    s === 'archived' ? confirmButton('Delete', 'Really delete?', (b) => taskAction(task.id, 'delete', b)) : null);
}

async function taskAction(id, action, button) {
  $('drawer-error').textContent = '';
  const buttons = [...$('drawer-actions').querySelectorAll('button')];
  for (const b of buttons) b.dataset.wasDisabled = String(b.disabled);
  for (const b of buttons) b.disabled = true;
  try {
    if (action === 'delete') {
      await api('DELETE', `/api/tasks/${encodeURIComponent(id)}`);
      S.tasks.delete(id);
      closeDrawer();
      notice('Task deleted.', 'ok');
      renderActivity();
      refreshState();
      return;
    }
    const answer = await api('POST', `/api/tasks/${encodeURIComponent(id)}/${action}`);
    const task = S.tasks.get(id);
    if (task && answer && answer.status) task.status = answer.status;
    renderActivity();
    await loadTask();
    refreshSoon();
  } catch (e) {
    if (S.drawer && S.drawer.id === id) $('drawer-error').textContent = `${label(action)} refused: ${e.text}`;
    else notice(`${label(action)} refused: ${e.text}`, 'error');
  } finally {
    for (const b of buttons) if (document.contains(b)) b.disabled = b.dataset.wasDisabled === 'true';
  }
  void button;
}

function label(action) {
  return action.charAt(0).toUpperCase() + action.slice(1);
}

// ---- session drawer

function findSession(id) {
  const st = S.state || {};
  return (st.sessions || []).find((s) => s.id === id) || (st.archivedSessions || []).find((s) => s.id === id) || null;
}

function openSession(id, opener) {
  S.drawer = { kind: 'session', id, tab: 'messages', messages: null, diff: null };
  showDrawer(opener);
  renderSessionHead();
  fill($('drawer-body'), h('div', { class: 'muted pad', text: 'Loading…' }));
  tabs($('drawer-tabs'), [['messages', 'Messages'], ['diff', 'Diff'], ['meta', 'Meta']], 'messages', (tab) => {
    S.drawer.tab = tab;
    loadSession();
  });
  loadSession();
}

function renderSessionHead() {
  const { id } = S.drawer;
  const s = findSession(id);
  const status = (S.state && S.state.sessionStatus && S.state.sessionStatus[id]) || 'idle';
  drawerHead('Session', (s && s.title) || id, s ? s.directory : '', [h('span', { class: `pill s-${status}`, text: status }), s && s.archived_at ? badge('archived') : null]);
  const archived = Boolean(s && s.archived_at);
  fill($('drawer-actions'),
    h('button', { type: 'button', text: 'Use for task', onclick: () => { useSession(id); closeDrawer(); } }),
    archived
      ? h('button', { type: 'button', text: 'Unarchive', onclick: async (e) => { if (await sessionAction(id, 'unarchive', e.currentTarget)) renderSessionHead(); } })
      : h('button', { type: 'button', text: 'Archive', onclick: async (e) => { if (await sessionAction(id, 'archive', e.currentTarget)) renderSessionHead(); } }),
    confirmButton('Delete', 'Really delete?', async (b) => { if (await sessionAction(id, 'delete', b)) closeDrawer(); }));
}

async function loadSession() {
  const d = S.drawer;
  if (!d || d.kind !== 'session') return;
  const id = d.id;
  const body = $('drawer-body');
  try {
    if (d.tab === 'messages') {
      const data = await api('GET', `/api/sessions/${encodeURIComponent(id)}/messages?limit=50`);
      if (S.drawer !== d || d.tab !== 'messages') return;
      d.messages = data.messages || [];
      fill(body, d.messages.length ? h('ol', { class: 'messages' }, d.messages.map(messageView)) : empty('No messages', 'This session has not been prompted yet.'));
    } else if (d.tab === 'diff') {
      const data = await api('GET', `/api/sessions/${encodeURIComponent(id)}/diff`);
      if (S.drawer !== d || d.tab !== 'diff') return;
      const files = data.diff || [];
      fill(body, files.length ? files.map(diffView) : empty('No changes', 'The newest turn of this session changed no files.'));
    } else {
      const s = findSession(id) || { id };
      const msgs = d.messages || [];
      const tokens = msgs.reduce((a, m) => {
        const t = m.tokens || {};
        return a + (Number(t.input) || 0) + (Number(t.output) || 0) + (Number(t.reasoning) || 0) + (Number(t.cache && t.cache.read) || 0) + (Number(t.cache && t.cache.write) || 0);
      }, 0);
      const models = [...new Set(msgs.map((m) => m.model).filter(Boolean))];
      fill(body, h('dl', { class: 'facts' },
        fact('Id', h('span', { class: 'mono small', text: s.id })),
        fact('Folder', h('span', { class: 'mono small', text: s.directory || '—' })),
        fact('Model', models.length ? models.join(', ') : '—'),
        fact('Tokens', msgs.length ? `${num(tokens)} in the last ${msgs.length} messages` : 'open Messages first'),
        fact('Created', s.created_at ? h('span', null, clock(s.created_at), ' · ', timeAgo(s.created_at)) : '—'),
        fact('Updated', s.updated_at ? h('span', null, clock(s.updated_at), ' · ', timeAgo(s.updated_at)) : '—'),
        s.archived_at ? fact('Archived', timeAgo(s.archived_at)) : null));
    }
  } catch (e) {
    if (S.drawer !== d) return;
    fill(body, empty('Could not load this session', e.text));
  }
}

function messageView(m) {
  const parts = (m.parts || []).map((p) => {
    if (p.type === 'text') return h('div', { class: 'pre part-text', text: p.text || '' });
    if (p.type === 'reasoning') return h('details', { class: 'part-reasoning' }, h('summary', { text: 'Reasoning' }), h('div', { class: 'pre', text: p.text || '' }));
    if (p.type === 'tool') {
      const state = p.state || {};
      return h('details', { class: 'part-tool' }, h('summary', null, h('span', { class: 'mono', text: p.tool || 'tool' }), ' ', h('span', { class: 'muted small', text: state.status || '' }), state.title ? h('span', { class: 'small', text: ` ${state.title}` }) : null),
        state.input ? h('pre', { text: JSON.stringify(state.input, null, 2) }) : null,
        typeof state.output === 'string' && state.output ? h('pre', { text: state.output.slice(0, 4000) }) : null);
    }
    if (['step-start', 'step-finish', 'other', 'snapshot', 'patch'].includes(p.type)) return null;
    return h('div', { class: 'muted small', text: `[${p.type}]` });
  });
  return h('li', { class: `msg role-${m.role}` },
    h('div', { class: 'msg-head' }, h('strong', { text: m.role }), m.model ? h('span', { class: 'mono small muted', text: m.model }) : null, timeAgo(m.created_at)),
    m.error ? h('div', { class: 'error-text pre', text: typeof m.error === 'string' ? m.error : JSON.stringify(m.error) }) : null,
    parts);
}

function diffView(file) {
  const lines = String(file.patch || file.diff || '').split('\n');
  const pre = h('pre', { class: 'diff' });
  for (const line of lines) {
    const cls = line.startsWith('+') && !line.startsWith('+++') ? 'add' : line.startsWith('-') && !line.startsWith('---') ? 'del' : line.startsWith('@@') ? 'hunk' : '';
    pre.appendChild(h('span', { class: cls, text: `${line}\n` }));
  }
  return h('details', { class: 'diff-file', open: true },
    h('summary', null, h('span', { class: 'mono', text: file.file || file.path || 'file' }), ' ',
      h('span', { class: 'add', text: `+${file.additions || 0}` }), ' ', h('span', { class: 'del', text: `-${file.deletions || 0}` }),
      file.status ? h('span', { class: 'muted small', text: ` ${file.status}` }) : null),
    lines.length > 1 || lines[0] ? pre : h('p', { class: 'muted small', text: 'No patch text.' }));
}

// ---------------------------------------------------------------- new task

const NT = { target: 'workspace', mode: 'prompt', interval: 5, unit: 60, intervalTouched: false, plan: null, targetSeg: null };

function setupNewTask() {
  NT.targetSeg = segmented($('target-seg'), [['workspace', 'Workspace'], ['session', 'Session']], NT.target, (v) => {
    NT.target = v;
    $('target-workspace').hidden = v !== 'workspace';
    $('target-session').hidden = v !== 'session';
  });
  segmented($('mode-seg'), [['prompt', 'Prompt'], ['spec', 'Spec'], ['plan', 'Plan']], NT.mode, (v) => {
    NT.mode = v;
    for (const m of ['prompt', 'spec', 'plan']) $(`mode-${m}`).hidden = m !== v;
    $('nt-submit').textContent = v === 'plan' ? 'Create task from plan' : 'Start task';
    intervalHint();
  });
  const intervalSeg = segmented($('interval-seg'), [['0', 'Once'], ['5', '5m'], ['15', '15m'], ['30', '30m'], ['60', '1h']], '5', (v) => {
    NT.interval = Number(v);
    NT.unit = 60;
    NT.intervalTouched = true;
    $('nt-interval').value = v;
    $('nt-interval-unit').value = '60';
    intervalHint();
  });
  $('nt-interval-unit').addEventListener('change', () => {
    NT.unit = Number($('nt-interval-unit').value) || 60;
    NT.intervalTouched = true;
    intervalHint();
  });
  $('nt-interval').addEventListener('input', () => {
    NT.interval = Math.max(0, Math.floor(Number($('nt-interval').value) || 0));
    NT.intervalTouched = true;
    for (const b of $('interval-seg').children) {
      b.setAttribute('aria-checked', String(b.dataset.value === String(NT.interval)));
    }
    intervalHint();
  });
  void intervalSeg;
  intervalHint();
  $('nt-browse').addEventListener('click', () => toggleBrowser());
  $('nt-draft').addEventListener('click', draftPlan);
  $('new-task').addEventListener('submit', (e) => {
    e.preventDefault();
    submitTask();
  });
  for (const id of ['nt-workspace', 'nt-prompt', 'nt-spec', 'nt-intent', 'nt-session']) {
    $(id).addEventListener('input', () => $(id).removeAttribute('aria-invalid'));
  }
}

function intervalHint() {
  const n = NT.interval;
  let text;
  if (NT.mode === 'spec' && !NT.intervalTouched) text = "The spec's own check_interval is used unless you pick one here.";
  else if (n === 0) text = NT.mode === 'prompt' ? 'Send the prompt once; OpenLoom does not check it again.' : 'Never check on a timer; OpenLoom still reacts when the agent goes idle.';
  else text = `Check every ${n} ${NT.unit === 1 ? 'second' : 'minute'}${n === 1 ? '' : 's'} (and whenever the agent goes idle).`;
  $('interval-hint').textContent = text;
}

function renderTargetOptions() {
  const st = S.state || {};
  const sessions = st.sessions || [];
  const select = $('nt-session');
  const current = select.value;
  renderKeyed(select, sessions.map((s) => [s.id, s.title, s.directory]), () => sessions.length
    ? sessions.map((s) => h('option', { value: s.id, text: `${s.title || s.id} — ${shortPath(s.directory)}` }))
    : h('option', { value: '', text: 'No sessions: start OpenCode or pick a workspace' }));
  if (current && sessions.some((s) => s.id === current)) select.value = current;
  const recent = st.recentWorkspaces || [];
  renderKeyed($('nt-recent'), recent, () => recent.slice(0, 6).map((path) => h('button', {
    type: 'button', class: 'chip', title: path, text: shortPath(path), onclick: () => useWorkspace(path),
  })));
}

function useWorkspace(path) {
  NT.targetSeg.set('workspace');
  $('nt-workspace').value = path;
  $('nt-workspace').removeAttribute('aria-invalid');
  $(`nt-${NT.mode === 'plan' ? 'intent' : NT.mode}`).focus();
}

function useSession(id) {
  NT.targetSeg.set('session');
  renderTargetOptions();
  const select = $('nt-session');
  if (![...select.options].some((o) => o.value === id)) {
    select.appendChild(h('option', { value: id, text: id }));
  }
  select.value = id;
  $(`nt-${NT.mode === 'plan' ? 'intent' : NT.mode}`).focus();
}

async function toggleBrowser(force) {
  const box = $('browser');
  const show = force !== undefined ? force : box.hidden;
  box.hidden = !show;
  $('nt-browse').setAttribute('aria-expanded', String(show));
  if (show) browse($('nt-workspace').value.trim());
}

async function browse(path) {
  const box = $('browser');
  fill(box, h('div', { class: 'muted small pad', text: 'Loading…' }));
  let data;
  try {
    data = await api('GET', `/api/browse${path ? `?path=${encodeURIComponent(path)}` : ''}`);
  } catch (e) {
    fill(box, h('p', { class: 'error', text: e.text }), h('button', { type: 'button', text: 'Show the default folder', onclick: () => browse('') }));
    return;
  }
  const children = data.children || [];
  fill(box,
    h('div', { class: 'browser-path mono small', text: data.path }),
    h('div', { class: 'row' },
      h('button', { type: 'button', text: 'Parent folder', disabled: !data.parent, onclick: () => browse(data.parent) }),
      h('button', { type: 'button', class: 'primary', text: 'Select this folder', onclick: () => { $('nt-workspace').value = data.path; toggleBrowser(false); $('nt-workspace').focus(); } })),
    children.length
      ? h('ul', { class: 'browser-list' }, children.map((c) => h('li', null, h('button', { type: 'button', class: 'side-item', title: c.path, onclick: () => browse(c.path) },
        h('span', { class: 'folder', 'aria-hidden': 'true' }), h('span', { text: c.name })))))
      : h('p', { class: 'muted small', text: 'No folders inside.' }));
}

function targetFields() {
  if (NT.target === 'session') {
    const id = $('nt-session').value;
    return id ? { sessionId: id } : {};
  }
  const ws = $('nt-workspace').value.trim();
  return ws ? { workspace: ws } : {};
}

async function draftPlan() {
  const intent = $('nt-intent').value.trim();
  $('nt-error').textContent = '';
  if (!intent) {
    $('nt-intent').setAttribute('aria-invalid', 'true');
    $('nt-error').textContent = 'Write what you want done first; the model drafts the plan from it.';
    $('nt-intent').focus();
    return;
  }
  const button = $('nt-draft');
  button.disabled = true;
  $('nt-draft-state').textContent = 'Drafting… (the model is writing a plan)';
  try {
    const answer = await api('POST', '/api/tasks/plan', { intent, ...targetFields() });
    NT.plan = answer.plan || {};
    if (answer.workspace && NT.target === 'workspace') $('nt-workspace').value = answer.workspace;
    renderPlanEditor();
    $('nt-draft-state').textContent = 'Draft ready: edit it, then create the task.';
  } catch (e) {
    $('nt-draft-state').textContent = '';
    $('nt-error').textContent = e.text;
  } finally {
    button.disabled = false;
  }
}

function renderPlanEditor() {
  const plan = NT.plan;
  const editor = $('plan-editor');
  if (!plan) { fill(editor); return; }
  plan.steps = plan.steps || [];
  plan.global_acceptance = plan.global_acceptance || [];
  const input = (value, onInput, attrs = {}) => h('input', { value: value || '', oninput: (e) => onInput(e.target.value), ...attrs });
  const remove = (labelText, fn) => h('button', { type: 'button', class: 'icon', 'aria-label': labelText, title: labelText, text: '×', onclick: () => { fn(); renderPlanEditor(); } });
  const list = (items, what) => h('ul', { class: 'plan-list' }, items.map((a, i) => h('li', { class: 'row' },
    input(a, (v) => { items[i] = v; }, { 'aria-label': `${what} ${i + 1}`, placeholder: 'Done when…' }),
    remove(`Remove ${what.toLowerCase()} ${i + 1}`, () => items.splice(i, 1)))));
  fill(editor,
    h('label', { for: 'plan-name', text: 'Name' }), input(plan.name, (v) => { plan.name = v; }, { id: 'plan-name' }),
    h('label', { for: 'plan-goal', text: 'Goal' }),
    h('textarea', { id: 'plan-goal', rows: '3', value: plan.goal || '', oninput: (e) => { plan.goal = e.target.value; } }),
    h('div', { class: 'row spread' }, h('span', { class: 'label', text: `Steps (${plan.steps.length})` }),
      h('button', { type: 'button', class: 'small-btn', text: '+ Add step', onclick: () => { plan.steps.push({ title: '', acceptance: [] }); renderPlanEditor(); } })),
    h('ol', { class: 'plan-steps' }, plan.steps.map((step, i) => {
      step.acceptance = step.acceptance || [];
      return h('li', { class: 'plan-step' },
        h('div', { class: 'row' }, input(step.title, (v) => { step.title = v; }, { 'aria-label': `Step ${i + 1}`, placeholder: 'Describe this step' }),
          remove(`Remove step ${i + 1}`, () => plan.steps.splice(i, 1))),
        h('div', { class: 'row spread' }, h('span', { class: 'muted small', text: 'Step acceptance' }),
          h('button', { type: 'button', class: 'small-btn', text: '+ Add', onclick: () => { step.acceptance.push(''); renderPlanEditor(); } })),
        list(step.acceptance, `Step ${i + 1} acceptance`));
    })),
    h('div', { class: 'row spread' }, h('span', { class: 'label', text: 'Global acceptance' }),
      h('button', { type: 'button', class: 'small-btn', text: '+ Add', onclick: () => { plan.global_acceptance.push(''); renderPlanEditor(); } })),
    list(plan.global_acceptance, 'Acceptance'));
}

function intervalFields() {
  return NT.unit === 1 ? { checkIntervalSeconds: NT.interval } : { checkIntervalMinutes: NT.interval };
}

async function submitTask() {
  const error = $('nt-error');
  error.textContent = '';
  const body = { ...targetFields() };
  if (NT.target === 'session' && !body.sessionId) {
    error.textContent = 'Pick a session, or switch the target to a workspace.';
    $('nt-session').setAttribute('aria-invalid', 'true');
    return;
  }
  if (NT.mode === 'prompt') {
    body.prompt = $('nt-prompt').value;
    Object.assign(body, intervalFields());
    body.watch = NT.interval > 0;
  } else if (NT.mode === 'spec') {
    body.spec = $('nt-spec').value;
    body.format = $('nt-format').value;
    if (NT.intervalTouched) Object.assign(body, intervalFields());
  } else {
    if (!NT.plan) {
      error.textContent = 'Draft a plan first (Draft plan), or switch to Prompt.';
      $('nt-intent').focus();
      return;
    }
    const plan = NT.plan;
    body.plan = {
      ...plan,
      steps: (plan.steps || []).filter((s) => s.title.trim()).map((s) => ({ ...s, acceptance: (s.acceptance || []).filter((a) => a.trim()) })),
      global_acceptance: (plan.global_acceptance || []).filter((a) => a.trim()),
    };
    body.intent = $('nt-intent').value.trim() || plan.intent || '';
    Object.assign(body, intervalFields());
  }
  const submit = $('nt-submit');
  submit.disabled = true;
  submit.setAttribute('aria-busy', 'true');
  try {
    const answer = await api('POST', '/api/tasks', body);
    $('nt-prompt').value = '';
    $('nt-spec').value = '';
    if (NT.mode === 'plan') { NT.plan = null; $('nt-intent').value = ''; renderPlanEditor(); $('nt-draft-state').textContent = ''; }
    notice(`Task “${answer.name || answer.taskId}” created.`, 'ok');
    if (answer.taskId && !S.tasks.has(answer.taskId)) {
      S.tasks.set(answer.taskId, {
        id: answer.taskId, name: answer.name || answer.taskId, status: answer.status || 'pending', workspace: body.workspace || '',
        progress: 0, completed_steps: [], created_at: new Date().toISOString(), spec: { steps: new Array(answer.steps || 0).fill({}) },
        last_summary: 'Created', check_interval_seconds: body.checkIntervalSeconds ?? (body.checkIntervalMinutes || 0) * 60,
      });
    }
    showView('activity');
    renderActivity();
    refreshSoon();
  } catch (e) {
    error.textContent = e.text;
    const field = /workspace|folder|root/i.test(e.detail || '') ? 'nt-workspace'
      : /session/i.test(e.detail || '') ? 'nt-session'
        : NT.mode === 'prompt' ? 'nt-prompt' : NT.mode === 'spec' ? 'nt-spec' : 'nt-intent';
    $(field).setAttribute('aria-invalid', 'true');
  } finally {
    submit.disabled = false;
    submit.removeAttribute('aria-busy');
  }
}

start();
