// Manager dashboard (#/dashboard): live queue and agent health for today. Reads
// GET /api/v1/dashboard?since=<local midnight> at most ~300 ms after the server pushes a
// 'floor' hint (a conversation opened, was assigned, transferred or closed, an agent changed
// state) or a 'conv'/'msg' event, and every 5 s besides (waits grow with time). Everything is updated in place (rows keyed by skill name / agent id,
// text written only when it changed), so focus, selection and scroll survive updates.
// A failed poll shows an error banner and keeps the last data on screen.

import { get, post, query, ApiError } from './api.js';
import { h, duration, startOfDay, setText } from './dom.js';
import { barChart, meter, formatCount } from './charts.js';

const POLL_MS = 5000;
const LIVE_DEBOUNCE_MS = 300;
const STATES = [
  ['online', 'Online'],
  ['away', 'Away'],
  ['back_soon', 'Back soon'],
  ['offline', 'Offline'],
];
const STATE_LABEL = Object.fromEntries(STATES);
const STATE_ORDER = { online: 0, back_soon: 1, away: 2, offline: 3 };
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const oneDecimal = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

// Waiting longer than these (seconds) is shown as a warning / an alert.
const WAIT_WARN = 60;
const WAIT_ALERT = 300;

export function render(root, ctx) {
  const view = buildView();
  root.appendChild(view.element);

  let stopped = false;
  let timer = null;
  let debounce = null;
  let inFlight = false;
  let again = false;
  let lastData = null;
  let lastOk = 0;

  async function refresh() {
    if (stopped) return;
    if (document.hidden && lastData) {
      // Background tab: no polling; visibilitychange refreshes on return.
      clearTimeout(timer);
      timer = setTimeout(refresh, POLL_MS);
      return;
    }
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    clearTimeout(timer);
    try {
      const [data, queue] = await Promise.all([
        get('/api/v1/dashboard' + query({ since: startOfDay() })),
        get('/api/v1/queue'),
      ]);
      if (stopped) return;
      lastData = data;
      lastOk = Date.now();
      view.update(data);
      view.updateQueue(queue, soon);
      view.showError(null);
    } catch (error) {
      if (stopped) return;
      view.showError(error, lastData ? lastOk : 0);
    } finally {
      inFlight = false;
      if (!stopped) {
        if (again) {
          again = false;
          timer = setTimeout(refresh, 50);
        } else {
          timer = setTimeout(refresh, POLL_MS);
        }
      }
    }
  }

  // At most one refresh per LIVE_DEBOUNCE_MS however busy the floor: a burst of hints
  // coalesces, a steady stream still refreshes.
  const soon = () => {
    if (debounce) return;
    debounce = setTimeout(() => { debounce = null; refresh(); }, LIVE_DEBOUNCE_MS);
  };
  const unsubscribe = [];
  if (ctx && ctx.live && typeof ctx.live.on === 'function') {
    for (const type of ['floor', 'conv', 'msg']) {
      const off = ctx.live.on(type, soon);
      if (typeof off === 'function') unsubscribe.push(off);
    }
  }
  const onVisible = () => {
    if (!document.hidden) refresh();
  };
  document.addEventListener('visibilitychange', onVisible);
  refresh();

  return () => {
    stopped = true;
    document.removeEventListener('visibilitychange', onVisible);
    clearTimeout(timer);
    clearTimeout(debounce);
    unsubscribe.forEach((off) => off());
    view.destroy();
  };
}

function buildView() {
  const updated = h('time', { class: 'updated', id: 'dashboard-updated' }, 'Loading…');
  const liveDot = h('span', { class: 'live-dot', 'aria-hidden': 'true' });
  const errorText = h('span');
  const errorBox = h('div', { class: 'mgr-alert', role: 'alert', hidden: true }, errorText);

  const kpi = {
    queued: kpiCard('In queue', 'waiting for an agent'),
    longest: kpiCard('Longest wait', 'oldest conversation in queue'),
    open: kpiCard('Open conversations', ''),
    resolved: kpiCard('Resolved today', 'since midnight'),
    csat: kpiCard('CSAT today', ''),
  };

  const skillsBody = h('tbody');
  const skillsTable = h('table', { id: 'skills-table', class: 'data-table' },
    h('caption', { class: 'visually-hidden' }, 'Queues by skill'),
    h('thead', null, h('tr', null,
      th('Skill'), th('In queue', 'num'), th('Longest wait', 'num'), th('Est. wait', 'num'),
      th('Open', 'num'), th('Agents'), th('Load', 'load-col'))),
    skillsBody);

  const agentsBody = h('tbody');
  const agentsTable = h('table', { id: 'agents-table', class: 'data-table' },
    h('caption', { class: 'visually-hidden' }, 'Agents'),
    h('thead', null, h('tr', null,
      th('Agent'), th('State'), th('Load', 'num'), th('Resolved today', 'num'), th('Avg first response', 'num'))),
    agentsBody);

  const csatChart = barChart({
    title: 'CSAT responses today by score',
    categories: [1, 2, 3, 4, 5].map((n) => ({ label: String(n), long: `Score ${n}`, class: `score-${n}` })),
    series: [{ name: 'Responses', values: [0, 0, 0, 0, 0], class: 'series-csat' }],
    categoryName: 'Score',
    height: 120,
    compact: true,
    emptyText: 'No responses yet',
  });
  const csatSummary = h('p', { class: 'csat-summary' }, '—');

  // The waiting conversations in serving order, each with a priority a manager can change.
  const waitingBody = h('tbody');
  const waitingTable = h('table', { id: 'waiting-table', class: 'data-table' },
    h('caption', { class: 'visually-hidden' }, 'Waiting conversations'),
    h('thead', null, h('tr', null, th('Customer'), th('Skill'), th('Waiting', 'num'), th('Priority'))),
    waitingBody);
  const waitingCount = h('span', { class: 'card-meta' });
  const waitingRows = new Map();

  const skillsCount = h('span', { class: 'card-meta' });
  const agentsCount = h('span', { class: 'card-meta' });

  const element = h('section', { id: 'dashboard', class: 'mgr-page', 'aria-label': 'Dashboard' },
    h('div', { class: 'mgr-header' },
      h('p', { class: 'mgr-sub' }, 'Live queues and agents · today since 00:00'),
      h('div', { class: 'mgr-header-aside' }, liveDot, updated)),
    errorBox,
    h('div', { class: 'kpis' }, Object.values(kpi).map((card) => card.element)),
    h('section', { class: 'card', 'aria-labelledby': 'skills-heading' },
      h('div', { class: 'card-head' }, h('h2', { id: 'skills-heading' }, 'Queues by skill'), skillsCount,
        h('ul', { class: 'state-legend', 'aria-label': 'Agent states' },
          STATES.map(([state, label]) => h('li', { class: 'state-' + state }, h('span', { class: 'dot', 'aria-hidden': 'true' }), label)))),
      h('div', { class: 'table-wrap' }, skillsTable)),
    h('section', { class: 'card', 'aria-labelledby': 'waiting-heading' },
      h('div', { class: 'card-head' }, h('h2', { id: 'waiting-heading' }, 'Waiting now'), waitingCount),
      h('div', { class: 'table-wrap' }, waitingTable)),
    h('div', { class: 'dash-grid' },
      h('section', { class: 'card', 'aria-labelledby': 'agents-heading' },
        h('div', { class: 'card-head' }, h('h2', { id: 'agents-heading' }, 'Agents'), agentsCount),
        h('div', { class: 'table-wrap table-wrap-tall' }, agentsTable)),
      h('section', { class: 'card', 'aria-labelledby': 'csat-heading' },
        h('div', { class: 'card-head' }, h('h2', { id: 'csat-heading' }, 'Customer satisfaction today')),
        csatSummary, csatChart.element)),
  );

  skillsBody.appendChild(placeholderRow(7, 'Loading…'));
  waitingBody.appendChild(placeholderRow(4, 'Loading…'));
  agentsBody.appendChild(placeholderRow(5, 'Loading…'));

  const skillRows = new Map();
  const agentRows = new Map();
  let csatKey = '';

  function update(data) {
    const totals = data.totals || {};
    const csat = data.csat || { responses: 0, average: null, distribution: [0, 0, 0, 0, 0] };
    const skills = data.skills || [];
    const agents = data.agents || [];

    kpi.queued.set(formatCount(totals.queued ?? 0));
    kpi.queued.element.classList.toggle('is-alert', (totals.queued ?? 0) > 0 && (totals.longest_wait_secs ?? 0) >= WAIT_ALERT);
    kpi.longest.set(totals.longest_wait_secs == null ? '—' : duration(totals.longest_wait_secs));
    waitClass(kpi.longest.element, totals.longest_wait_secs);
    kpi.open.set(formatCount(totals.open ?? 0));
    kpi.open.note(`${formatCount(totals.assigned ?? 0)} assigned to agents`);
    kpi.resolved.set(formatCount(totals.resolved_today ?? 0));
    kpi.resolved.note(`${formatCount(totals.auto_closed_today ?? 0)} auto-closed · ${formatCount(totals.off_hours_today ?? 0)} after hours`);
    kpi.csat.set(csat.average == null ? '—' : oneDecimal.format(csat.average) + ' / 5');
    kpi.csat.note(csat.responses === 1 ? '1 response' : `${formatCount(csat.responses || 0)} responses`);

    // Skills, in the server's order.
    const skillNames = new Map();
    for (const skill of skills) if (skill.id != null) skillNames.set(skill.id, skill.name);
    syncRows(skillsBody, skillRows, skills, (skill) => skill.name, createSkillRow, updateSkillRow, 7, 'No skills yet.');
    setText(skillsCount, `${skills.length} ${skills.length === 1 ? 'queue' : 'queues'}`);

    // Agents: available ones first, then by name (stable between polls).
    const sorted = [...agents].sort((a, b) =>
      (STATE_ORDER[a.state] ?? 9) - (STATE_ORDER[b.state] ?? 9) || String(a.name).localeCompare(String(b.name)));
    syncRows(agentsBody, agentRows, sorted, (agent) => String(agent.id), createAgentRow,
      (row, agent) => updateAgentRow(row, agent, skillNames), 5, 'No agents in this brand.');
    const online = agents.filter((a) => a.state === 'online').length;
    setText(agentsCount, `${online} of ${agents.length} online`);

    const distribution = (csat.distribution || []).slice(0, 5);
    while (distribution.length < 5) distribution.push(0);
    const key = JSON.stringify(distribution);
    if (key !== csatKey) {
      csatKey = key;
      csatChart.update({ series: [{ name: 'Responses', values: distribution, class: 'series-csat' }] });
    }
    setText(csatSummary, csat.responses
      ? `Average ${oneDecimal.format(csat.average ?? 0)} from ${formatCount(csat.responses)} ${csat.responses === 1 ? 'response' : 'responses'}`
      : 'No survey answers yet today.');

    const stamp = data.generated_at ? new Date(data.generated_at) : new Date();
    setText(updated, 'Updated ' + clock.format(stamp));
    updated.setAttribute('datetime', stamp.toISOString());
  }

  function showError(error, lastOk) {
    errorBox.hidden = !error;
    element.classList.toggle('is-stale', !!error);
    if (!error) return;
    let message = error instanceof ApiError ? error.message : String(error);
    if (error instanceof ApiError && error.status === 403) message = 'Your role cannot see the dashboard. ' + message;
    const kept = lastOk ? ` Showing data from ${clock.format(new Date(lastOk))}.` : '';
    if (!/[.!?…]$/.test(message)) message += '.';
    setText(errorText, `Live updates failed: ${message}${kept} Retrying every 2 seconds…`);
    if (!lastOk) setText(updated, 'Not loaded');
  }

  function updateQueue(queue, refreshSoon) {
    const waiting = queue.waiting || [];
    syncRows(waitingBody, waitingRows, waiting, (w) => String(w.conversation_id), (w) => createWaitingRow(w, refreshSoon),
      updateWaitingRow, 4, 'Nobody is waiting.');
    const more = (queue.total ?? waiting.length) - waiting.length;
    setText(waitingCount, `${formatCount(queue.total ?? waiting.length)} waiting` + (more > 0 ? ` (first ${waiting.length} shown)` : ''));
  }

  return { element, update, updateQueue, showError, destroy: () => csatChart.destroy() };
}

function th(text, cls) {
  return h('th', { scope: 'col', class: cls || null }, text);
}

function placeholderRow(cols, text) {
  return h('tr', { class: 'placeholder-row' }, h('td', { colspan: cols }, text));
}

function kpiCard(label, note) {
  const value = h('span', { class: 'kpi-value' }, '—');
  const noteNode = h('span', { class: 'kpi-note' }, note);
  const element = h('div', { class: 'kpi' }, h('span', { class: 'kpi-label' }, label), value, noteNode);
  return { element, set: (text) => setText(value, text), note: (text) => setText(noteNode, text) };
}

function waitClass(node, secs) {
  node.classList.toggle('is-warn', secs != null && secs >= WAIT_WARN && secs < WAIT_ALERT);
  node.classList.toggle('is-alert', secs != null && secs >= WAIT_ALERT);
}

// Keyed in-place sync: existing rows are updated, new ones created, gone ones removed,
// and nodes are only moved when the order changed.
function syncRows(tbody, rows, items, keyOf, create, update, cols, emptyText) {
  const seen = new Set();
  const wanted = [];
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let row = rows.get(key);
    if (!row) {
      row = create(item);
      rows.set(key, row);
    }
    update(row, item);
    wanted.push(row.element);
  }
  for (const [key, row] of rows) {
    if (!seen.has(key)) {
      row.element.remove();
      rows.delete(key);
    }
  }
  for (const node of [...tbody.children]) if (!wanted.includes(node)) node.remove();
  if (!items.length) {
    tbody.appendChild(placeholderRow(cols, emptyText));
    return;
  }
  wanted.forEach((node, i) => {
    if (tbody.children[i] !== node) tbody.insertBefore(node, tbody.children[i] || null);
  });
}

function createSkillRow(skill) {
  const cells = {
    name: h('th', { scope: 'row', class: 'name' }),
    queue: h('td', { class: 'num queue-depth' }),
    longest: h('td', { class: 'num longest-wait' }),
    estimated: h('td', { class: 'num estimated-wait' }),
    open: h('td', { class: 'num open' }),
    agents: h('td', { class: 'agents-states' }),
    load: h('td', { class: 'load-col' }),
  };
  const pills = {};
  for (const [state, label] of STATES) {
    const count = h('span', { class: 'pill-count' });
    pills[state] = { element: h('span', { class: `pill state-${state}`, title: label }, h('span', { class: 'dot', 'aria-hidden': 'true' }), count, h('span', { class: 'visually-hidden' }, ' ' + label.toLowerCase())), count };
    cells.agents.appendChild(pills[state].element);
  }
  const loadText = h('span', { class: 'load-text' });
  const bar = meter(0, 0);
  cells.load.appendChild(h('span', { class: 'load-wrap' }, loadText, bar.element));
  const element = h('tr', { dataset: { skill: skill.name } }, Object.values(cells));
  if (skill.id == null) element.classList.add('unrouted');
  return { element, cells, pills, loadText, bar };
}

function updateSkillRow(row, skill) {
  const { cells } = row;
  setText(cells.name, skill.name);
  setText(cells.queue, formatCount(skill.queue_depth ?? 0));
  cells.queue.classList.toggle('is-nonzero', (skill.queue_depth ?? 0) > 0);
  setText(cells.longest, skill.longest_wait_secs == null ? '—' : duration(skill.longest_wait_secs));
  waitClass(cells.longest, skill.longest_wait_secs);
  setText(cells.estimated, skill.estimated_wait_secs == null ? '—' : duration(skill.estimated_wait_secs));
  setText(cells.open, formatCount(skill.open ?? 0));
  const agents = skill.agents || {};
  for (const [state] of STATES) {
    const n = agents[state] ?? 0;
    setText(row.pills[state].count, n);
    row.pills[state].element.classList.toggle('is-zero', n === 0);
  }
  const load = skill.load ?? 0;
  const capacity = skill.capacity ?? 0;
  setText(row.loadText, `${load} / ${capacity}`);
  row.bar.update(load, capacity);
  row.bar.element.title = capacity ? `${Math.round((load / capacity) * 100)}% of online capacity in use` : 'No online capacity';
}

// What the state cell says: the routing state, and why when it is not what the agent
// chose (their workspace is closed; their conversations return to the queue at the end of
// the grace period).
function presenceLabel(agent) {
  const label = STATE_LABEL[agent.state] || agent.state;
  if (agent.connected !== false) return label;
  if (agent.grace_until != null) {
    const left = Math.max(0, Math.round((agent.grace_until - Date.now()) / 1000));
    return `Disconnected · back to queue in ${duration(left)}`;
  }
  return agent.chosen_state && agent.chosen_state !== 'offline' ? 'Disconnected' : label;
}

const PRIORITIES = [['urgent', 'Urgent'], ['high', 'High'], ['normal', 'Normal']];

function createWaitingRow(waiting, refreshSoon) {
  const id = waiting.conversation_id;
  const name = h('span', { class: 'agent-name' });
  const note = h('span', { class: 'agent-skills' });
  const select = h('select', { class: 'input-short', id: 'priority-' + id, 'aria-label': 'Priority' },
    PRIORITIES.map(([value, label]) => h('option', { value }, label)));
  select.addEventListener('change', async () => {
    select.disabled = true;
    try {
      await post(`/api/v1/conversations/${id}/priority`, { priority: select.value });
    } catch (error) {
      select.title = error.message;
    } finally {
      select.disabled = false;
      refreshSoon();
    }
  });
  const cells = {
    name: h('th', { scope: 'row', class: 'name' }, name, note),
    skill: h('td', { class: 'skill' }),
    waiting: h('td', { class: 'num wait-time' }),
    priority: h('td', { class: 'priority' }, select),
  };
  const element = h('tr', { dataset: { conversation: String(id) } }, Object.values(cells));
  return { element, cells, name, note, select };
}

function updateWaitingRow(row, waiting) {
  const consumer = waiting.consumer;
  setText(row.name, consumer?.name || 'Visitor #' + (consumer?.id ?? waiting.conversation_id));
  setText(row.note, waiting.offered_to != null ? 'being offered to an agent' : '');
  setText(row.cells.skill, waiting.skill || 'Unrouted');
  const secs = Math.max(0, (Date.now() - waiting.waiting_since) / 1000);
  setText(row.cells.waiting, duration(secs));
  waitClass(row.cells.waiting, secs);
  if (document.activeElement !== row.select && row.select.value !== waiting.priority) row.select.value = waiting.priority;
}

function createAgentRow() {
  const name = h('span', { class: 'agent-name' });
  const skills = h('span', { class: 'agent-skills' });
  const stateLabel = h('span', { class: 'state-label' });
  const cells = {
    name: h('th', { scope: 'row', class: 'name' }, name, skills),
    state: h('td', { class: 'state' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), stateLabel),
    load: h('td', { class: 'num load' }),
    resolved: h('td', { class: 'num resolved' }),
    frt: h('td', { class: 'num first-response' }),
  };
  const element = h('tr', null, Object.values(cells));
  return { element, cells, name, skills, stateLabel, state: null };
}

function updateAgentRow(row, agent, skillNames) {
  const { cells } = row;
  row.element.dataset.agent = String(agent.id);
  setText(row.name, agent.name);
  setText(row.skills, (agent.skills || []).map((id) => skillNames.get(id) || '#' + id).join(', '));
  if (row.state !== agent.state) {
    if (row.state) cells.state.classList.remove('state-' + row.state);
    cells.state.classList.add('state-' + agent.state);
    row.element.classList.toggle('is-offline', agent.state === 'offline');
    row.state = agent.state;
  }
  setText(row.stateLabel, presenceLabel(agent));
  setText(cells.load, `${agent.load ?? 0} / ${agent.max_concurrent ?? 0}`);
  cells.load.classList.toggle('is-full', agent.max_concurrent > 0 && agent.load >= agent.max_concurrent);
  setText(cells.resolved, formatCount(agent.resolved_today ?? 0));
  setText(cells.frt, agent.avg_first_response_secs == null ? '—' : duration(agent.avg_first_response_secs));
}
