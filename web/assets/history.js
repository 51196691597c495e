// Conversation search on the Reports page: the report's date range plus status, CSAT, channel,
// agent, skill and customer filters → GET /api/v1/reports/conversations (newest first, keyset
// pages: "Load more" follows `next`), one row per conversation with its customer, agent,
// skill, status, score and transfers; export links (TXT, XML, JSON) for the whole selection
// (GET /api/v1/exports/conversations with the same filters) and for each conversation.

import { get, query } from './api.js';
import { h, clear, when, setText } from './dom.js';

const CHANNELS = [['', 'Any channel'], ['in_app', 'In-app'], ['web', 'Web'], ['sms', 'SMS'], ['messenger', 'Messenger']];
const STATUSES = [['', 'Any status'], ['open', 'Open'], ['closed', 'Closed']];
const CSAT = [['', 'Any score'], ['1-2', '1–2 (unhappy)'], ['3-3', '3'], ['4-5', '4–5 (happy)'], ['1-5', 'Any answer']];
const FORMATS = [['txt', 'TXT'], ['xml', 'XML'], ['json', 'JSON']];

// The search card; `setRange(from, to)` (ms) runs the search for the report's range.
export function conversationSearch() {
  let range = null;
  let cursor = null;
  let sequence = 0;
  let stopped = false;
  const select = (id, name, options) => h('select', { id, name }, options.map(([v, l]) => h('option', { value: v }, l)));
  const status = select('search-status', 'status', STATUSES);
  const csat = select('search-csat', 'csat', CSAT);
  const channel = select('search-channel', 'channel', CHANNELS);
  const agent = h('select', { id: 'search-agent', name: 'agent_id' }, h('option', { value: '' }, 'Any agent'));
  const skill = h('select', { id: 'search-skill', name: 'skill_id' }, h('option', { value: '' }, 'Any skill'));
  const consumer = h('input', { type: 'search', id: 'search-consumer', name: 'consumer', placeholder: 'Customer id',
    autocomplete: 'off', spellcheck: 'false' });
  const labelled = (label, control) => h('div', { class: 'field-inline' }, h('label', { for: control.id }, label), control);
  const form = h('form', { class: 'search-filters', id: 'search-form', 'aria-label': 'Search conversations',
    onsubmit: (event) => { event.preventDefault(); run(true); } },
  labelled('Status', status), labelled('CSAT', csat), labelled('Channel', channel), labelled('Agent', agent),
  labelled('Skill', skill), labelled('Customer', consumer),
  h('button', { type: 'submit', class: 'button primary', id: 'search-submit' }, 'Search'));
  for (const control of [status, csat, channel, agent, skill]) control.addEventListener('change', () => run(true));

  const exports = h('div', { class: 'export-links', id: 'search-exports', role: 'group', 'aria-label': 'Export these conversations' },
    h('span', { class: 'muted' }, 'Export all:'),
    FORMATS.map(([format, label]) => h('a', { class: 'button small', id: `search-export-${format}`, href: '#', download: '' }, label)));
  const summary = h('p', { class: 'search-summary', id: 'search-summary', role: 'status' });
  const error = h('div', { class: 'mgr-alert', role: 'alert', hidden: true });
  const tbody = h('tbody');
  const table = h('table', { class: 'data-table', id: 'search-results' },
    h('thead', null, h('tr', null,
      ['Opened', 'Customer', 'Agent', 'Skill', 'Status'].map((t) => h('th', { scope: 'col' }, t)),
      h('th', { scope: 'col', class: 'num' }, 'CSAT'), h('th', { scope: 'col', class: 'num' }, 'Transfers'),
      h('th', { scope: 'col', class: 'num' }, 'Messages'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Export')))),
    tbody);
  const more = h('button', { type: 'button', class: 'button', id: 'search-more', hidden: true, onclick: () => run(false) }, 'Load more');
  const element = h('section', { class: 'card', id: 'conversation-search', 'aria-labelledby': 'search-heading' },
    h('div', { class: 'card-head' }, h('h2', { id: 'search-heading' }, 'Conversations'), exports),
    form, summary, error, table, h('div', { class: 'form-actions' }, more));

  // Agents and skills for the filters (a failure leaves just "Any").
  Promise.all([get('/api/v1/users'), get('/api/v1/skills')]).then(([users, skills]) => {
    users.filter((u) => u.max_concurrent > 0 || u.role === 'agent')
      .forEach((u) => agent.appendChild(h('option', { value: String(u.id) }, u.name)));
    skills.forEach((s) => skill.appendChild(h('option', { value: String(s.id) }, s.name)));
  }).catch(() => {});

  function filters() {
    const [min, max] = csat.value ? csat.value.split('-') : [null, null];
    return {
      from: range?.from, to: range?.to, status: status.value, csat_min: min, csat_max: max, channel: channel.value,
      agent_id: agent.value, skill_id: skill.value, consumer: consumer.value.trim(),
    };
  }

  async function run(reset) {
    if (!range) return;
    const mine = ++sequence;
    if (reset) cursor = null;
    const params = filters();
    for (const link of exports.querySelectorAll('a')) {
      const format = link.id.replace('search-export-', '');
      link.href = '/api/v1/exports/conversations' + query({ ...params, format });
      link.setAttribute('download', `conversations.${format}`);
    }
    more.disabled = true;
    try {
      const page = await get('/api/v1/reports/conversations' + query({ ...params, cursor, limit: 50, messages: 0 }));
      if (stopped || mine !== sequence) return;
      error.hidden = true;
      if (reset) clear(tbody);
      page.conversations.forEach((record) => tbody.appendChild(row(record)));
      const shown = tbody.querySelectorAll('tr[data-conversation]').length;
      if (reset && !shown) tbody.appendChild(h('tr', null, h('td', { colspan: 9, class: 'muted' }, 'No conversation matches.')));
      setText(summary, shown ? `${shown} conversation${shown === 1 ? '' : 's'}${page.next ? ' so far' : ''}, newest first` : '');
      cursor = page.next ?? null;
      more.hidden = !cursor;
    } catch (failure) {
      if (stopped || mine !== sequence) return;
      error.hidden = false;
      setText(error, 'Could not search: ' + (failure.message || String(failure)));
    } finally {
      more.disabled = false;
    }
  }

  function row(record) {
    const c = record.conversation;
    const customer = record.consumer;
    const name = customer?.name || customer?.external_id || 'Customer #' + c.consumer_id;
    return h('tr', { dataset: { conversation: c.id } },
      h('td', null, when(c.opened_at)),
      h('td', { class: 'customer' }, name, customer && customer.name ? h('span', { class: 'muted mono small' }, ' ' + customer.external_id) : null),
      h('td', null, record.agent || '—'),
      h('td', null, record.skill || '—'),
      h('td', null, h('span', { class: 'status-pill ' + c.status }, c.status === 'open' ? 'Open' : 'Closed')),
      h('td', { class: 'num' }, record.csat ? `${record.csat.score}/5` : '—'),
      h('td', { class: 'num' }, String(record.transfers.length)),
      h('td', { class: 'num' }, String(c.last_seq)),
      h('td', { class: 'actions' }, h('a', {
        class: 'button small', href: `/api/v1/conversations/${c.id}/transcript?format=txt`, download: `conversation-${c.id}.txt`,
        'aria-label': `Export conversation ${c.id} as text`,
      }, 'TXT')));
  }

  return {
    element,
    setRange(from, to) {
      range = { from, to };
      run(true);
    },
    destroy() {
      stopped = true;
    },
  };
}
