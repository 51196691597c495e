// Privacy admin pages (#/admin/masking | data | audit): the brand's masking rules (what is
// hidden in message text, and from whom: PUT /api/v1/brand/masking, the whole list at once,
// checked by the server, whose message names the rule at fault); data (retention status and
// runs, "Purge now", erasure of one consumer's data); and the audit log (filters, newest
// first, "Load more" by cursor). Built with admin.js's frame and form helpers; all text goes
// through dom.js h() (textContent), never parsed as HTML.

import { get, put, post, query } from './api.js';
import { h, clear, when } from './dom.js';
import {
  adminShell, field, checkbox, alertBox, errorText, handleSubmit, confirmInline, loadPage, sectionCard, badge,
} from './admin.js';

const PAGES = {
  masking: ['Masking', 'What is hidden in message text, and from whom', maskingPage],
  data: ['Privacy & data', 'How long transcripts are kept, and erasing a customer\'s data', dataPage],
  audit: ['Audit log', 'Who changed what, and every export, erasure and purge', auditPage],
};

export function render(root, ctx, parts) {
  const key = PAGES[parts?.[1]] ? parts[1] : 'masking';
  const [title, subtitle, page] = PAGES[key];
  const { body, app } = adminShell(root, ctx, key, title, subtitle);
  if (body) page(body, app);
  return () => {
    app.stopped = true;
  };
}

// ----- masking rules -------------------------------------------------------------------------

const AUDIENCES = [
  ['agents', 'Agents', 'Agents and managers see it masked: live, in the inbox, history and exports.'],
  ['other_devices', 'The customer\'s other devices', 'Devices other than the one that sent it, and the customer\'s history.'],
  ['storage', 'Storage', 'Masked before the message is stored: never written in clear anywhere.'],
];

let ruleIds = 0;

async function maskingPage(body, app) {
  const loaded = await loadPage(body, app, maskingPage, [() => get('/api/v1/brand/masking')]);
  if (!loaded) return;
  const alert = alertBox();
  const list = h('div', { class: 'masking-rules', id: 'masking-rules' });
  const count = h('span', { class: 'card-meta', id: 'masking-count' });
  const updateCount = () => {
    const n = list.children.length;
    count.textContent = n === 1 ? '1 rule' : `${n} rules`;
  };
  const show = (rules) => {
    clear(list);
    rules.forEach((rule) => list.appendChild(ruleEditor(rule, updateCount)));
    if (!rules.length) list.appendChild(emptyNote());
    updateCount();
  };
  const emptyNote = () => h('p', { class: 'hint masking-empty' }, 'No rules: message text is shown and stored as written.');
  const add = (rule) => {
    list.querySelector('.masking-empty')?.remove();
    const editor = ruleEditor(rule, updateCount);
    list.appendChild(editor);
    updateCount();
    editor.querySelector('input[name=name]')?.focus();
  };
  const addCard = h('button', { type: 'button', class: 'button', id: 'add-card-rule',
    onclick: () => add({ name: 'Credit card numbers', kind: 'credit_card', hidden_from: { agents: true, storage: true }, enabled: true }) },
  'Add card rule');
  const addPattern = h('button', { type: 'button', class: 'button', id: 'add-pattern-rule',
    onclick: () => add({ name: '', kind: 'pattern', pattern: '', hidden_from: { agents: true }, enabled: true }) },
  'Add pattern rule');
  const form = h('form', { class: 'settings-form', id: 'masking-form', 'aria-label': 'Masking rules', novalidate: true },
    alert.node,
    h('p', { class: 'hint card-note' },
      'Card rules find 13 to 19 digits in groups that pass the Luhn check and keep the last four visible. ',
      'Pattern rules use regular expressions (Rust regex syntax: no look-around or back-references) and hide every ',
      'non-space character they match. A change applies to the next message; messages already stored keep what ',
      'was hidden from storage when they were stored.'),
    list,
    h('div', { class: 'form-actions' }, addCard, addPattern,
      h('button', { type: 'submit', class: 'button primary', id: 'masking-save' }, 'Save rules')));
  handleSubmit(form, alert, async () => {
    const rules = [...list.querySelectorAll('.masking-rule')].map(readRule);
    const saved = await put('/api/v1/brand/masking', { rules });
    show(saved.rules);
    app.toast(saved.rules.length ? `Masking rules saved (${saved.rules.length})` : 'Masking rules saved: none');
  });
  show(loaded[0].rules);
  body.appendChild(sectionCard('Masking rules', count, null, form));
}

function ruleEditor(rule, onRemove) {
  const id = `rule-${++ruleIds}`;
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: 100, value: rule.name || '', autocomplete: 'off' });
  const kind = h('select', { name: 'kind' },
    h('option', { value: 'credit_card', selected: rule.kind === 'credit_card' }, 'Card numbers (Luhn)'),
    h('option', { value: 'pattern', selected: rule.kind === 'pattern' }, 'Pattern (regular expression)'));
  const pattern = h('input', { type: 'text', name: 'pattern', maxlength: 500, value: rule.pattern || '', class: 'mono',
    autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. \\bDE\\d{20}\\b' });
  const patternField = field('Pattern', pattern, 'At most 500 characters; must not match empty text.');
  const audiences = AUDIENCES.map(([key, label, hint]) =>
    checkbox(label, h('input', { type: 'checkbox', name: key, checked: Boolean(rule.hidden_from?.[key]) }), hint));
  const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: rule.enabled !== false });
  const remove = h('button', { type: 'button', class: 'button small danger', 'aria-label': 'Remove this rule' }, 'Remove');
  const element = h('fieldset', { class: 'fieldset masking-rule', id },
    h('legend', null, rule.kind === 'pattern' ? 'Pattern rule' : 'Card rule'),
    h('div', { class: 'form-grid' }, field('Name', name), field('Kind', kind), patternField),
    h('fieldset', { class: 'fieldset' }, h('legend', null, 'Hidden from'), audiences),
    h('div', { class: 'rule-foot' }, checkbox('Enabled', enabled), remove));
  const showPattern = () => {
    patternField.hidden = kind.value !== 'pattern';
    element.querySelector('legend').textContent = kind.value === 'pattern' ? 'Pattern rule' : 'Card rule';
  };
  kind.addEventListener('change', showPattern);
  showPattern();
  remove.addEventListener('click', () => {
    element.remove();
    onRemove();
  });
  return element;
}

// The rule as the API takes it (unknown fields are refused, so only these).
function readRule(element) {
  const e = (name) => element.querySelector(`[name=${name}]`);
  const rule = {
    name: e('name').value.trim(),
    kind: e('kind').value,
    hidden_from: Object.fromEntries(AUDIENCES.map(([key]) => [key, e(key).checked])),
    enabled: e('enabled').checked,
  };
  if (rule.kind === 'pattern') rule.pattern = e('pattern').value;
  return rule;
}

// ----- retention and erasure -----------------------------------------------------------------

async function dataPage(body, app) {
  const loaded = await loadPage(body, app, dataPage, [() => get('/api/v1/retention')]);
  if (!loaded) return;
  body.append(retentionCard(loaded[0], app), erasureCard(app));
}

function retentionCard(initial, app) {
  const summary = h('p', { class: 'retention-summary', id: 'retention-summary', role: 'status' });
  const tbody = h('tbody');
  const table = h('table', { class: 'data-table', id: 'retention-runs' },
    h('thead', null, h('tr', null,
      ['Started', 'Finished', 'Closed before'].map((t) => h('th', { scope: 'col' }, t)),
      ['Conversations', 'Messages', 'CSAT answers', 'Profiles cleared'].map((t) => h('th', { scope: 'col', class: 'num' }, t)))),
    tbody);
  const purge = h('button', { type: 'button', class: 'button', id: 'purge-now' }, 'Purge now');
  const show = (status) => {
    summary.textContent = `Transcripts are kept ${status.retention_days} days (change it under Settings): conversations closed before `
      + `${when(status.horizon)} are hidden from everyone and deleted by the purge. `
      + (status.running ? 'A purge is running. ' : '')
      + (status.waiting ? `${status.waiting} waiting to be deleted.` : 'Nothing waits to be deleted.');
    clear(tbody);
    if (!status.runs.length) {
      tbody.appendChild(h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No purge has deleted anything yet.')));
    }
    for (const run of status.runs) {
      tbody.appendChild(h('tr', { dataset: { run: run.id } },
        h('td', null, when(run.started_at)),
        h('td', null, run.finished_at == null ? 'Under way' : when(run.finished_at)),
        h('td', null, when(run.horizon)),
        [run.conversations, run.messages, run.csat, run.profiles].map((n) => h('td', { class: 'num' }, String(n)))));
    }
    purge.disabled = status.running;
  };
  purge.addEventListener('click', async () => {
    purge.disabled = true;
    try {
      show(await post('/api/v1/retention/purge'));
      app.toast('Purge started');
      // Follow it until it is done.
      for (let i = 0; i < 120 && !app.stopped; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const status = await get('/api/v1/retention');
        if (app.stopped) return;
        show(status);
        if (!status.running) break;
      }
    } catch (error) {
      app.toast('Could not purge: ' + errorText(error), 'error');
      purge.disabled = false;
    }
  });
  show(initial);
  return sectionCard('Retention', null, purge, summary, table);
}

function erasureCard(app) {
  const alert = alertBox();
  const result = h('p', { class: 'erasure-result', id: 'erasure-result', role: 'status' });
  const consumer = h('input', { type: 'text', name: 'consumer', id: 'erase-consumer', required: true, maxlength: 256,
    autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const submit = h('button', { type: 'submit', class: 'button danger', id: 'erase-submit' }, 'Erase…');
  const actions = h('div', { class: 'form-actions' }, submit);
  const form = h('form', { class: 'settings-form', id: 'erasure-form', 'aria-label': 'Erase a customer\'s data', novalidate: true },
    alert.node,
    field('Customer id', consumer, 'The id your systems know them by (the token\'s sub), or anon:… for an anonymous visitor.'),
    h('p', { class: 'hint' }, 'Deletes their conversations, messages, satisfaction scores, pending notifications, device tokens and '
      + 'profile. An open conversation is closed first. This cannot be undone; the audit log records it.'),
    actions, result);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    alert.hide();
    const id = consumer.value.trim();
    if (!id) {
      alert.show('Enter the customer id to erase.');
      return;
    }
    confirmInline(actions, `Erase everything about ${id}?`, 'Erase', async () => {
      const erased = await post('/api/v1/consumers/erase', { consumer: id });
      clear(actions).appendChild(submit);
      result.textContent = `Erased ${erased.consumer}: ${erased.conversations} conversation(s)`
        + ` (${erased.open_conversations} open), ${erased.messages} message(s), ${erased.push_tokens} device token(s)`
        + (erased.profile ? ', and the profile.' : '.');
      consumer.value = '';
      app.toast(`Erased ${erased.consumer}`);
    }, submit);
  });
  return sectionCard('Erase a customer\'s data', null, null, form);
}

// ----- audit log -----------------------------------------------------------------------------

const ACTOR_KINDS = [
  ['', 'Anyone'],
  ['user', 'Signed-in users'],
  ['api_token', 'API tokens'],
  ['system', 'The retention purge'],
  ['operator', 'The operator'],
  ['cli', 'The command line'],
];
const ACTIONS = [
  ['', 'Everything'],
  ['user.', 'Agents and users'],
  ['token.', 'API tokens'],
  ['skill.', 'Skills'],
  ['app.', 'Apps and keys'],
  ['brand.', 'Brand settings'],
  ['masking.', 'Masking rules'],
  ['automatic_message.', 'Automatic messages'],
  ['hours.', 'Business hours'],
  ['export.', 'Exports'],
  ['consumer.', 'Erasures'],
  ['retention.', 'Retention purges'],
];
const ACTOR_LABEL = { api_token: 'token', system: 'system', operator: 'operator', cli: 'command line' };

async function auditPage(body, app) {
  const action = h('select', { id: 'audit-action', name: 'action' }, ACTIONS.map(([v, l]) => h('option', { value: v }, l)));
  const actor = h('select', { id: 'audit-actor', name: 'actor_kind' }, ACTOR_KINDS.map(([v, l]) => h('option', { value: v }, l)));
  const alert = alertBox();
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'button', id: 'audit-more', hidden: true }, 'Load more');
  const table = h('table', { class: 'data-table audit-table', id: 'audit-table' },
    h('thead', null, h('tr', null, ['When', 'Who', 'What', 'Target', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  let cursor = null;
  let sequence = 0;
  const load = async (reset) => {
    const mine = ++sequence;
    if (reset) cursor = null;
    alert.hide();
    more.disabled = true;
    try {
      const page = await get('/api/v1/audit' + query({ action: action.value, actor_kind: actor.value, cursor, limit: 50 }));
      if (app.stopped || mine !== sequence) return;
      if (reset) clear(tbody);
      for (const entry of page.entries) tbody.appendChild(auditRow(entry));
      if (reset && !page.entries.length) {
        tbody.appendChild(h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'Nothing recorded yet.')));
      }
      cursor = page.next ?? null;
      more.hidden = !cursor;
    } catch (error) {
      if (!app.stopped) alert.show('Could not load the audit log: ' + errorText(error));
    } finally {
      more.disabled = false;
    }
  };
  action.addEventListener('change', () => load(true));
  actor.addEventListener('change', () => load(true));
  more.addEventListener('click', () => load(false));
  const filters = h('div', { class: 'form-grid audit-filters' }, field('Show', action), field('Done by', actor));
  body.appendChild(sectionCard('Audit log', null, null, filters, alert.node, table, h('div', { class: 'form-actions' }, more)));
  await load(true);
}

function auditRow(entry) {
  const who = h('td', { class: 'who' }, entry.actor_name);
  if (entry.actor_kind !== 'user') who.appendChild(badge(ACTOR_LABEL[entry.actor_kind] || entry.actor_kind, 'badge-muted'));
  const details = entry.detail == null ? '' : JSON.stringify(entry.detail);
  return h('tr', { dataset: { entry: entry.id, action: entry.action } },
    h('td', { class: 'when' }, when(entry.at)),
    who,
    h('td', { class: 'action mono' }, entry.action),
    h('td', { class: 'target' }, entry.target || ''),
    h('td', { class: 'detail mono', title: details }, details.length > 160 ? details.slice(0, 159) + '…' : details));
}
