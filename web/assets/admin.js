// Admin pages (#/admin/agents | skills | apps | messages | tokens | settings): brand users, routing
// skills, apps with their JWT keys, automatic messages (templates per trigger, skill and
// language, with a preview), API tokens (created with a role and an optional expiry, the secret
// shown once; listed with where each stands and its last use; revoked) and brand settings (including auto-close). Forms use <label for>, native required fields,
// show the server's error message in an inline role=alert box and confirm success with a
// toast. Tables are edited in place through expandable rows; deletes ask inline first.
// All text is set through dom.js h() (textContent), never parsed as HTML.

import { get, post, put, patch, del, ApiError } from './api.js';
import { h, clear, when } from './dom.js';

const SECTIONS = [
  ['agents', 'Agents'],
  ['skills', 'Skills'],
  ['apps', 'Apps'],
  ['messages', 'Automatic messages'],
  ['tokens', 'API tokens'],
  ['settings', 'Settings'],
];
const ROLES = [
  ['agent', 'Agent'],
  ['manager', 'Manager'],
  ['admin', 'Admin'],
];
const STATE_LABEL = { online: 'Online', away: 'Away', back_soon: 'Back soon', offline: 'Offline' };
const ROLE_LABEL = Object.fromEntries(ROLES);
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
let uid = 0;

export function render(root, ctx, parts) {
  const section = SECTIONS.some(([key]) => key === parts?.[1]) ? parts[1] : 'agents';
  const title = SECTIONS.find(([key]) => key === section)[1];
  const { body, app } = adminShell(root, ctx, section, title, SUBTITLES[section]);
  if (body) {
    ({ agents: agentsPage, skills: skillsPage, apps: appsPage, messages: messagesPage, tokens: tokensPage, settings: settingsPage })[section](body, app);
  }
  return () => {
    app.stopped = true;
  };
}

// The frame of an admin page (header, toasts) in `root`, and the page's `app` handle
// ({me, stopped, toast}). `body` is null for a non-admin, who is told so instead. Also used by
// privacy.js for the masking, data and audit pages.
export function adminShell(root, ctx, section, title, subtitle) {
  // The shell's sidebar links the sections and its top bar shows the title.
  const toasts = h('div', { class: 'toasts admin-toasts', role: 'status', 'aria-live': 'polite' });
  const body = h('div', { class: 'admin-body', id: `admin-${section}` });
  const page = h('section', { id: 'admin', class: 'mgr-page admin-page', 'aria-label': `Admin: ${title}`, dataset: { section } },
    h('div', { class: 'mgr-header' }, h('p', { class: 'mgr-sub' }, subtitle)),
    body, toasts);
  root.appendChild(page);

  const app = {
    me: ctx?.me,
    stopped: false,
    // Success/failure notices: the shell's toasts when it offers them, our own otherwise.
    toast(message, kind = 'ok') {
      if (typeof ctx?.notify === 'function') {
        ctx.notify(message, kind === 'error' ? 'error' : 'success');
        return;
      }
      const item = h('div', { class: `toast toast-${kind}` }, message);
      toasts.appendChild(item);
      setTimeout(() => item.remove(), 4000);
    },
  };
  if (ctx?.me && ctx.me.role !== 'admin') {
    body.appendChild(h('div', { class: 'mgr-alert', role: 'alert' }, 'Only brand admins can change these settings.'));
    return { body: null, app };
  }
  return { body, app };
}

const SUBTITLES = {
  agents: 'People who answer conversations, their skills and capacity',
  skills: 'Queues that conversations are routed to',
  apps: 'Apps and websites consumers connect from, and the keys that sign their tokens',
  messages: 'What consumers are told automatically as their conversation moves along',
  tokens: 'Credentials for scripts and integrations: each acts under its own name, never with more than its creator may do',
  settings: 'Brand-wide settings',
};

// ----- shared form helpers -----------------------------------------------------------------

function nid(name) {
  return `adm-${name}-${++uid}`;
}

// A labelled field. input must not have an id yet (one is assigned).
export function field(label, input, hint, cls) {
  if (!input.id) input.id = nid(input.name || 'field');
  const hintNode = hint ? h('span', { class: 'hint', id: input.id + '-hint' }, hint) : null;
  if (hintNode) input.setAttribute('aria-describedby', hintNode.id);
  return h('div', { class: 'field' + (cls ? ' ' + cls : '') }, h('label', { for: input.id }, label), input, hintNode);
}

export function checkbox(label, input, hint) {
  if (!input.id) input.id = nid(input.name || 'check');
  const hintNode = hint ? h('span', { class: 'hint', id: input.id + '-hint' }, hint) : null;
  if (hintNode) input.setAttribute('aria-describedby', hintNode.id);
  return h('div', { class: 'field field-check' }, input, h('label', { for: input.id }, label), hintNode);
}

function skillChecks(skills, selected, name) {
  if (!skills.length) return h('p', { class: 'hint' }, 'No skills yet — add them under Skills.');
  return h('div', { class: 'check-grid' }, skills.map((skill) => {
    const input = h('input', { type: 'checkbox', name, value: skill.id, checked: selected.includes(skill.id) });
    return checkbox(skill.name, input);
  }));
}

function checkedSkills(form, name) {
  return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => Number(input.value));
}

export function alertBox() {
  const node = h('div', { class: 'form-alert', role: 'alert', hidden: true });
  return {
    node,
    show(message) {
      node.textContent = message;
      node.hidden = false;
    },
    hide() {
      node.hidden = true;
      node.textContent = '';
    },
  };
}

export function errorText(error) {
  return error instanceof ApiError ? error.message : String(error && error.message ? error.message : error);
}

// Wires a form: on submit run `action(form)`; errors → alert, button disabled while pending.
export function handleSubmit(form, alert, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const buttons = [...form.querySelectorAll('button[type=submit]')];
    if (buttons.some((b) => b.disabled)) return;
    alert.hide();
    buttons.forEach((b) => { b.disabled = true; b.setAttribute('aria-busy', 'true'); });
    try {
      await action(form);
    } catch (error) {
      alert.show(errorText(error));
    } finally {
      buttons.forEach((b) => { b.disabled = false; b.removeAttribute('aria-busy'); });
    }
  });
}

// Replaces the content of `cell` by "question [confirm] [Cancel]" until answered.
export function confirmInline(cell, question, confirmLabel, onConfirm, returnFocus) {
  const saved = [...cell.childNodes];
  const restore = () => {
    clear(cell);
    saved.forEach((node) => cell.appendChild(node));
    returnFocus?.focus();
  };
  const yes = h('button', { type: 'button', class: 'button danger small' }, confirmLabel);
  const no = h('button', { type: 'button', class: 'button small', onclick: restore }, 'Cancel');
  const errorNode = h('span', { class: 'inline-error', role: 'alert' });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    errorNode.textContent = '';
    try {
      await onConfirm();
    } catch (error) {
      errorNode.textContent = errorText(error);
      yes.disabled = false;
    }
  });
  clear(cell);
  cell.appendChild(h('span', { class: 'confirm' }, h('span', { class: 'confirm-q' }, question), yes, no, errorNode));
  no.focus();
}

// Loads what a page needs (`requests`: promises' factories) with a "Loading…" line. Returns
// the results, or null when the page was left meanwhile or loading failed (then the page
// shows the error with a Retry button that runs `page` again).
export async function loadPage(body, app, page, requests) {
  const loading = h('p', { class: 'loading' }, 'Loading…');
  body.appendChild(loading);
  try {
    const results = await Promise.all(requests.map((request) => request()));
    if (app.stopped) return null;
    loading.remove();
    return results;
  } catch (error) {
    if (!app.stopped) {
      clear(body);
      const retry = () => { clear(body); page(body, app); };
      body.appendChild(h('div', { class: 'mgr-alert', role: 'alert' }, 'Could not load: ' + errorText(error) + ' ',
        h('button', { type: 'button', class: 'button small', onclick: retry }, 'Retry')));
    }
    return null;
  }
}

export function sectionCard(titleText, count, actions, ...children) {
  return h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', null, titleText), count, h('div', { class: 'card-actions' }, actions)),
    ...children);
}

export function badge(text, cls) {
  return h('span', { class: 'badge' + (cls ? ' ' + cls : '') }, text);
}

// A "New …" button that shows/hides a form panel.
function disclosure(label, panel, focusTarget) {
  panel.hidden = true;
  if (!panel.id) panel.id = nid('panel');
  const button = h('button', { type: 'button', class: 'button primary', 'aria-expanded': 'false', 'aria-controls': panel.id }, label);
  const set = (open) => {
    panel.hidden = !open;
    button.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) (focusTarget || panel.querySelector('input,select,textarea'))?.focus();
  };
  button.addEventListener('click', () => set(panel.hidden));
  return { button, open: () => set(true), close: () => { set(false); button.focus(); } };
}

function flash(row) {
  row.classList.add('is-new');
  setTimeout(() => row.classList.remove('is-new'), 2000);
}

// ----- agents ------------------------------------------------------------------------------

async function agentsPage(body, app) {
  const loaded = await loadPage(body, app, agentsPage, [() => get('/api/v1/users'), () => get('/api/v1/skills')]);
  if (!loaded) return;
  const [users, skills] = loaded;
  const skillName = new Map(skills.map((s) => [s.id, s.name]));
  const count = h('span', { class: 'card-meta' });
  const tbody = h('tbody');
  const rows = new Map();
  const updateCount = () => {
    const active = users.filter((u) => !u.disabled).length;
    count.textContent = `${users.length} users · ${active} active`;
  };

  // New agent form.
  const alert = alertBox();
  const nameInput = h('input', { type: 'text', name: 'name', required: true, maxlength: 200, autocomplete: 'off' });
  const form = h('form', { class: 'form-panel', id: 'new-agent-form', 'aria-label': 'New agent' },
    h('h3', null, 'New agent'),
    alert.node,
    h('div', { class: 'form-grid' },
      field('Name', nameInput),
      field('Email', h('input', { type: 'email', name: 'email', required: true, maxlength: 254, autocomplete: 'off' })),
      field('Password', h('input', { type: 'password', name: 'password', required: true, minlength: 10, maxlength: 256, autocomplete: 'new-password' }), 'At least 10 characters'),
      field('Role', h('select', { name: 'role', required: true }, ROLES.map(([v, l]) => h('option', { value: v }, l)))),
      field('Max concurrent conversations', h('input', { type: 'number', name: 'max_concurrent', required: true, min: 0, max: 100000, step: 1, value: 3, inputmode: 'numeric' }))),
    h('fieldset', { class: 'fieldset' }, h('legend', null, 'Skills'), skillChecks(skills, [], 'skills')),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'button primary' }, 'Create agent'),
      h('button', { type: 'button', class: 'button', onclick: () => { form.reset(); alert.hide(); toggle.close(); } }, 'Cancel')));
  const toggle = disclosure('New agent', form, nameInput);
  handleSubmit(form, alert, async () => {
    const user = await post('/api/v1/users', {
      name: form.elements.name.value.trim(),
      email: form.elements.email.value.trim(),
      password: form.elements.password.value,
      role: form.elements.role.value,
      max_concurrent: Number(form.elements.max_concurrent.value),
      skills: checkedSkills(form, 'skills'),
    });
    users.push(user);
    const row = addRow(user);
    updateCount();
    form.reset();
    toggle.close();
    flash(row.element);
    app.toast(`Created ${user.name} (${user.email})`);
  });

  const table = h('table', { class: 'data-table', id: 'users-table' },
    h('thead', null, h('tr', null,
      ['Name', 'Email', 'Role', 'Skills'].map((t) => h('th', { scope: 'col' }, t)),
      h('th', { scope: 'col', class: 'num' }, 'Max concurrent'),
      h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col', class: 'actions' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    tbody);

  function addRow(user) {
    const cells = {
      name: h('th', { scope: 'row', class: 'name' }),
      email: h('td', { class: 'email' }),
      role: h('td', { class: 'role' }),
      skills: h('td', { class: 'skills' }),
      max: h('td', { class: 'num max-concurrent' }),
      state: h('td', { class: 'state' }),
      status: h('td', { class: 'status' }),
      actions: h('td', { class: 'actions' }),
    };
    const editButton = h('button', { type: 'button', class: 'button small', 'aria-expanded': 'false' }, 'Edit');
    const disableButton = h('button', { type: 'button', class: 'button small' });
    cells.actions.append(editButton, disableButton);
    const element = h('tr', { dataset: { user: user.id } }, Object.values(cells));
    const row = { element, cells, editButton, disableButton, user, editor: null };
    rows.set(user.id, row);
    tbody.appendChild(element);
    fill(row);
    editButton.addEventListener('click', () => (row.editor ? closeEditor(row) : openEditor(row)));
    disableButton.addEventListener('click', async () => {
      const next = !row.user.disabled;
      disableButton.disabled = true;
      try {
        row.user = await patch(`/api/v1/users/${row.user.id}`, { disabled: next });
        replaceUser(row.user);
        fill(row);
        app.toast(`${row.user.name} ${next ? 'disabled — their sessions ended' : 'enabled'}`);
      } catch (error) {
        app.toast(`Could not ${next ? 'disable' : 'enable'} ${row.user.name}: ${errorText(error)}`, 'error');
      } finally {
        disableButton.disabled = false;
        disableButton.focus();
      }
    });
    return row;
  }

  function replaceUser(user) {
    const i = users.findIndex((u) => u.id === user.id);
    if (i >= 0) users[i] = user;
    updateCount();
  }

  function fill(row) {
    const { cells, user } = row;
    cells.name.textContent = user.name;
    if (app.me && app.me.id === user.id) cells.name.appendChild(badge('You', 'badge-muted'));
    cells.email.textContent = user.email;
    cells.role.textContent = ROLE_LABEL[user.role] || user.role;
    clear(cells.skills);
    if (user.skills.length) user.skills.forEach((id) => cells.skills.appendChild(badge(skillName.get(id) || '#' + id)));
    else cells.skills.appendChild(h('span', { class: 'muted' }, 'None'));
    cells.max.textContent = String(user.max_concurrent);
    clear(cells.state);
    cells.state.className = 'state state-' + user.state;
    cells.state.append(h('span', { class: 'dot', 'aria-hidden': 'true' }), STATE_LABEL[user.state] || user.state);
    clear(cells.status);
    cells.status.appendChild(user.disabled ? badge('Disabled', 'badge-danger') : badge('Active', 'badge-ok'));
    row.element.classList.toggle('is-disabled', user.disabled);
    row.disableButton.textContent = user.disabled ? 'Enable' : 'Disable';
    const self = app.me && app.me.id === user.id;
    row.disableButton.disabled = self;
    row.disableButton.title = self ? 'You cannot disable your own account' : '';
    row.disableButton.setAttribute('aria-label', `${user.disabled ? 'Enable' : 'Disable'} ${user.name}`);
    row.editButton.setAttribute('aria-label', `Edit ${user.name}`);
  }

  function openEditor(row) {
    for (const other of rows.values()) if (other.editor) closeEditor(other, false);
    const user = row.user;
    const alert = alertBox();
    const nameField = h('input', { type: 'text', name: 'name', required: true, maxlength: 200, value: user.name });
    const form = h('form', { class: 'form-panel inline-editor', 'aria-label': `Edit ${user.name}` },
      alert.node,
      h('div', { class: 'form-grid' },
        field('Name', nameField),
        field('Role', h('select', { name: 'role' }, ROLES.map(([v, l]) => h('option', { value: v, selected: v === user.role }, l)))),
        field('Max concurrent conversations', h('input', { type: 'number', name: 'max_concurrent', required: true, min: 0, max: 100000, step: 1, value: user.max_concurrent })),
        field('Reset password', h('input', { type: 'password', name: 'password', minlength: 10, maxlength: 256, autocomplete: 'new-password', placeholder: 'Leave empty to keep' }), 'At least 10 characters; their sessions stay valid')),
      h('fieldset', { class: 'fieldset' }, h('legend', null, 'Skills'), skillChecks(skills, user.skills, 'skills')),
      checkbox('Disabled (cannot log in)', h('input', { type: 'checkbox', name: 'disabled', checked: user.disabled, disabled: app.me?.id === user.id }),
        app.me?.id === user.id ? 'You cannot disable your own account.' : null),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'button primary' }, 'Save changes'),
        h('button', { type: 'button', class: 'button', onclick: () => closeEditor(row) }, 'Cancel')));
    handleSubmit(form, alert, async () => {
      const changes = {};
      const name = form.elements.name.value.trim();
      if (name !== user.name) changes.name = name;
      if (form.elements.role.value !== user.role) changes.role = form.elements.role.value;
      const max = Number(form.elements.max_concurrent.value);
      if (max !== user.max_concurrent) changes.max_concurrent = max;
      const picked = checkedSkills(form, 'skills');
      if (picked.slice().sort().join() !== user.skills.slice().sort().join()) changes.skills = picked;
      if (form.elements.password.value) changes.password = form.elements.password.value;
      if (form.elements.disabled.checked !== user.disabled) changes.disabled = form.elements.disabled.checked;
      if (!Object.keys(changes).length) {
        closeEditor(row);
        app.toast('No changes');
        return;
      }
      row.user = await patch(`/api/v1/users/${user.id}`, changes);
      replaceUser(row.user);
      fill(row);
      closeEditor(row);
      flash(row.element);
      app.toast(changes.password ? `Saved ${row.user.name}; the new password is set` : `Saved ${row.user.name}`);
    });
    form.addEventListener('keydown', (event) => { if (event.key === 'Escape') closeEditor(row); });
    row.editor = h('tr', { class: 'editor-row' }, h('td', { colspan: 8 }, form));
    row.element.after(row.editor);
    row.element.classList.add('is-editing');
    row.editButton.setAttribute('aria-expanded', 'true');
    nameField.focus();
  }

  function closeEditor(row, focus = true) {
    row.editor?.remove();
    row.editor = null;
    row.element.classList.remove('is-editing');
    row.editButton.setAttribute('aria-expanded', 'false');
    if (focus) row.editButton.focus();
  }

  users.sort((a, b) => a.name.localeCompare(b.name)).forEach(addRow);
  updateCount();
  body.append(sectionCard('Users', count, toggle.button, form, h('div', { class: 'table-wrap' }, table)));
}

// ----- skills ------------------------------------------------------------------------------

async function skillsPage(body, app) {
  const loaded = await loadPage(body, app, skillsPage, [() => get('/api/v1/skills'), () => get('/api/v1/users'),
    () => get('/api/v1/apps').catch(() => []), () => get('/api/v1/hours/status').catch(() => [])]);
  if (!loaded) return;
  let [skills, users, apps, hoursNow] = loaded; // `skills` shrinks when one is deleted
  const hoursOf = new Map(hoursNow.map((item) => [item.skill_id, item]));
  const count = h('span', { class: 'card-meta' });
  const tbody = h('tbody');
  const updateCount = () => {
    count.textContent = `${skills.length} ${skills.length === 1 ? 'skill' : 'skills'}`;
    if (!skills.length && !tbody.querySelector('.placeholder-row')) {
      tbody.appendChild(h('tr', { class: 'placeholder-row' }, h('td', { colspan: 6 }, 'No skills yet. Conversations go to the Unrouted queue.')));
    } else if (skills.length) tbody.querySelector('.placeholder-row')?.remove();
  };

  const alert = alertBox();
  const input = h('input', { type: 'text', name: 'name', id: 'new-skill-name', required: true, maxlength: 64, autocomplete: 'off', placeholder: 'e.g. sales' });
  const form = h('form', { class: 'inline-form', id: 'new-skill-form', 'aria-label': 'Add skill' },
    field('New skill name', input),
    h('button', { type: 'submit', class: 'button primary' }, 'Add skill'),
    alert.node);
  handleSubmit(form, alert, async () => {
    const skill = await post('/api/v1/skills', { name: input.value.trim() });
    skills.push(skill);
    const row = addRow(skill);
    updateCount();
    form.reset();
    input.focus();
    flash(row);
    app.toast(`Added skill “${skill.name}”`);
  });

  const table = h('table', { class: 'data-table', id: 'skills-admin-table' },
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Skill'), h('th', { scope: 'col', class: 'num' }, 'Agents'),
      h('th', { scope: 'col' }, 'Default for apps'), h('th', { scope: 'col' }, 'Routing'), h('th', { scope: 'col' }, 'Hours'),
      h('th', { scope: 'col', class: 'actions' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    tbody);

  function addRow(skill) {
    const agents = users.filter((u) => u.skills.includes(skill.id));
    const defaults = apps.filter((a) => a.default_skill_id === skill.id).map((a) => a.name);
    const deleteButton = h('button', { type: 'button', class: 'button small danger-text', 'aria-label': `Delete skill ${skill.name}` }, 'Delete');
    const hoursButton = h('button', { type: 'button', class: 'button small hours-button', 'aria-expanded': 'false', 'aria-label': `Business hours of ${skill.name}` }, 'Hours');
    const actions = h('td', { class: 'actions' }, hoursButton, deleteButton);
    const hoursCell = h('td', { class: 'hours' });
    const showHours = (item) => {
      clear(hoursCell);
      if (!item) return hoursCell.appendChild(h('span', { class: 'muted' }, '—'));
      hoursCell.append(badge(item.status.open ? 'Open' : 'Closed', item.status.open ? 'badge-ok' : 'badge-muted'),
        h('span', { class: 'sub' }, item.follows === 'skill' ? 'Own hours' : item.follows === 'brand' ? 'Brand\'s hours' : 'Always open'));
      return hoursCell;
    };
    showHours(hoursOf.get(skill.id));
    // Assign straight to an agent, or offer to one at a time (they accept or decline within
    // the timeout). Saved on change; the server's message is shown if it refuses.
    const routing = h('select', { class: 'input-short', id: `skill-routing-${skill.id}`, 'aria-label': `Routing of ${skill.name}` },
      h('option', { value: 'assign', selected: skill.routing !== 'offer' }, 'Assign directly'),
      h('option', { value: 'offer', selected: skill.routing === 'offer' }, 'Offer to accept'));
    const timeout = h('input', { type: 'number', class: 'input-short', id: `skill-offer-timeout-${skill.id}`, step: 1, min: 5, max: 300,
      value: skill.offer_timeout_secs ?? 30, 'aria-label': `Seconds to accept an offer of ${skill.name}`, hidden: skill.routing !== 'offer' });
    const saveRouting = async () => {
      try {
        const changes = { routing: routing.value };
        if (routing.value === 'offer') changes.offer_timeout_secs = Number(timeout.value);
        const saved = await patch(`/api/v1/skills/${skill.id}`, changes);
        timeout.hidden = saved.routing !== 'offer';
        app.toast(saved.routing === 'offer' ? `“${skill.name}” offers conversations (${saved.offer_timeout_secs} s to accept)` : `“${skill.name}” assigns directly`);
      } catch (error) {
        app.toast(error.message, 'error');
      }
    };
    routing.addEventListener('change', saveRouting);
    timeout.addEventListener('change', saveRouting);
    const row = h('tr', { dataset: { skillId: skill.id } },
      h('th', { scope: 'row', class: 'name' }, skill.name, h('span', { class: 'muted id-note' }, ` #${skill.id}`)),
      h('td', { class: 'num', title: agents.map((u) => u.name).join(', ') }, String(agents.length)),
      h('td', null, defaults.length ? defaults.join(', ') : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'routing' }, routing, ' ', timeout),
      hoursCell,
      actions);
    let hoursRow = null;
    const closeHours = (focus = true) => {
      hoursRow?.remove();
      hoursRow = null;
      row.classList.remove('is-editing');
      hoursButton.setAttribute('aria-expanded', 'false');
      if (focus) hoursButton.focus();
    };
    hoursButton.addEventListener('click', async () => {
      if (hoursRow) return closeHours();
      const cell = h('td', { colspan: 6 }, h('p', { class: 'loading' }, 'Loading hours…'));
      hoursRow = h('tr', { class: 'editor-row' }, cell);
      row.after(hoursRow);
      row.classList.add('is-editing');
      hoursButton.setAttribute('aria-expanded', 'true');
      try {
        const stored = await get(`/api/v1/skills/${skill.id}/hours`);
        if (!hoursRow) return;
        clear(cell).appendChild(skillHoursForm(skill, stored, (saved) => {
          hoursOf.set(skill.id, saved);
          showHours(saved);
          flash(row);
          app.toast(saved.hours ? `Saved the hours of “${skill.name}”` : `“${skill.name}” follows the brand's hours`);
        }, closeHours));
        cell.querySelector('select')?.focus();
      } catch (error) {
        clear(cell).appendChild(h('p', { class: 'form-alert', role: 'alert' }, 'Could not load the hours: ' + errorText(error)));
      }
    });
    deleteButton.addEventListener('click', () => {
      const warn = agents.length ? ` ${agents.length} ${agents.length === 1 ? 'agent loses' : 'agents lose'} it.` : '';
      confirmInline(actions, `Delete “${skill.name}”?${warn}`, 'Delete', async () => {
        await del(`/api/v1/skills/${skill.id}`);
        skills = skills.filter((s) => s.id !== skill.id);
        row.remove();
        updateCount();
        app.toast(`Deleted skill “${skill.name}”`);
        input.focus();
      }, deleteButton);
    });
    tbody.appendChild(row);
    return row;
  }

  skills.forEach(addRow);
  updateCount();
  body.append(sectionCard('Skills', count, null, form, h('div', { class: 'table-wrap' }, table)));
}

// A skill's own business hours, or none (it follows the brand's): PUT /api/v1/skills/{id}/hours.
function skillHoursForm(skill, stored, onSaved, close) {
  const alert = alertBox();
  const editor = hoursEditor(stored.hours, { offLabel: 'Follow the brand\'s hours', onLabel: 'Own hours', idPrefix: `skill-${skill.id}-hours` });
  const status = h('p', { class: 'hours-status', role: 'status' });
  const showStatus = (saved) => {
    const text = hoursStatusText(saved.status, saved.hours?.time_zone, saved.follows === 'always');
    status.textContent = saved.follows === 'brand' ? `${text} (the brand's hours)` : text;
    status.classList.toggle('is-open', saved.status.open);
  };
  showStatus(stored);
  const form = h('form', { class: 'form-panel inline-editor hours-form', id: `skill-hours-form-${skill.id}`, 'aria-label': `Business hours of ${skill.name}`, novalidate: true },
    h('h3', null, `Business hours of ${skill.name}`),
    alert.node, status, editor.node,
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'button primary' }, 'Save hours'),
      h('button', { type: 'button', class: 'button', onclick: () => close() }, 'Close')));
  handleSubmit(form, alert, async () => {
    const saved = await put(`/api/v1/skills/${skill.id}/hours`, { hours: editor.value() });
    showStatus(saved);
    onSaved(saved);
  });
  form.addEventListener('keydown', (event) => { if (event.key === 'Escape') close(); });
  return form;
}

// ----- API tokens --------------------------------------------------------------------------

const TOKEN_STATUS = {
  active: ['Active', 'badge-ok'],
  expired: ['Expired', 'badge-muted'],
  creator_disabled: ['Creator disabled', 'badge-danger'],
  creator_missing: ['Creator gone', 'badge-danger'],
};
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

async function tokensPage(body, app) {
  const loaded = await loadPage(body, app, tokensPage, [() => get('/api/v1/tokens'), () => get('/api/v1/users')]);
  if (!loaded) return;
  let [tokens, users] = loaded; // `tokens` shrinks when one is revoked
  const userName = new Map(users.map((u) => [u.id, u.name]));
  const count = h('span', { class: 'card-meta' });
  const tbody = h('tbody');
  const updateCount = () => {
    count.textContent = `${tokens.length} ${tokens.length === 1 ? 'token' : 'tokens'}`;
    if (!tokens.length && !tbody.querySelector('.placeholder-row')) {
      tbody.appendChild(h('tr', { class: 'placeholder-row' }, h('td', { colspan: 6 }, 'No API tokens.')));
    } else if (tokens.length) tbody.querySelector('.placeholder-row')?.remove();
  };

  // New token: the secret is shown once, here.
  const alert = alertBox();
  const nameInput = h('input', { type: 'text', name: 'name', id: 'new-token-name', required: true, maxlength: 200, autocomplete: 'off', placeholder: 'e.g. nightly export' });
  const roleSelect = h('select', { name: 'role', id: 'new-token-role' },
    ROLES.map(([value, label]) => h('option', { value, selected: value === 'manager' }, label)));
  const daysInput = h('input', { type: 'number', name: 'expires_in_days', id: 'new-token-days', min: 1, max: 3650, step: 1, class: 'input-short', placeholder: 'never' });
  const secretBox = h('div', { class: 'form-panel', id: 'new-token-secret', hidden: true, role: 'status' });
  const form = h('form', { class: 'inline-form', id: 'new-token-form', 'aria-label': 'New API token' },
    field('Name', nameInput),
    field('Role', roleSelect, 'At most yours; it never does more than its creator may do now'),
    field('Expires in days', daysInput, '1 to 3650; empty: until revoked'),
    h('button', { type: 'submit', class: 'button primary' }, 'Create token'),
    alert.node);
  handleSubmit(form, alert, async () => {
    const request = { name: nameInput.value.trim(), role: roleSelect.value };
    if (daysInput.value !== '') request.expires_in_days = Number(daysInput.value);
    const created = await post('/api/v1/tokens', request);
    tokens.push(created.info);
    const row = addRow(created.info);
    updateCount();
    form.reset();
    clear(secretBox);
    const secret = h('input', { type: 'text', readonly: true, class: 'mono token-secret', id: 'new-token-value', value: created.token, 'aria-label': `Secret of ${created.info.name}` });
    secretBox.append(
      h('p', null, `Copy the secret of “${created.info.name}” now: it is not shown again. Send it as Authorization: Bearer …`),
      secret,
      h('button', { type: 'button', class: 'button small', onclick: () => { clear(secretBox); secretBox.hidden = true; } }, 'Done'));
    secretBox.hidden = false;
    secret.focus();
    secret.select();
    flash(row);
    app.toast(`Created API token “${created.info.name}”`);
  });

  const table = h('table', { class: 'data-table', id: 'tokens-admin-table' },
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Token'), h('th', { scope: 'col' }, 'Acts as'),
      h('th', { scope: 'col' }, 'Created by'), h('th', { scope: 'col' }, 'Expires'), h('th', { scope: 'col' }, 'Last used'),
      h('th', { scope: 'col', class: 'actions' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    tbody);

  function addRow(token) {
    const [statusText, statusClass] = TOKEN_STATUS[token.status] || [token.status, 'badge-muted'];
    const actsAs = token.status === 'active'
      ? [ROLE_LABEL[token.acts_as] || token.acts_as,
        token.acts_as !== token.role ? h('span', { class: 'sub' }, ` (capped from ${ROLE_LABEL[token.role] || token.role})`) : null]
      : [badge(statusText, statusClass)];
    const revokeButton = h('button', { type: 'button', class: 'button small danger-text', 'aria-label': `Revoke token ${token.name}` }, 'Revoke');
    const actions = h('td', { class: 'actions' }, revokeButton);
    const at = (ms, none) => (ms ? dateTimeFormat.format(new Date(ms)) : h('span', { class: 'muted' }, none));
    const row = h('tr', { dataset: { tokenId: token.id } },
      h('th', { scope: 'row', class: 'name' }, token.name, h('span', { class: 'muted id-note' }, ` #${token.id}`)),
      h('td', { class: 'token-acts-as' }, ...actsAs),
      h('td', null, userName.get(token.created_by) || `user ${token.created_by}`),
      h('td', null, at(token.expires_at, 'Never')),
      h('td', { class: 'token-last-used' }, at(token.last_used_at, 'Not yet')),
      actions);
    revokeButton.addEventListener('click', () => {
      confirmInline(actions, `Revoke “${token.name}”? Its requests stop at once, its sockets within a heartbeat.`, 'Revoke', async () => {
        await del(`/api/v1/tokens/${token.id}`);
        tokens = tokens.filter((t) => t.id !== token.id);
        row.remove();
        updateCount();
        app.toast(`Revoked API token “${token.name}”`);
        nameInput.focus();
      }, revokeButton);
    });
    tbody.appendChild(row);
    return row;
  }

  tokens.forEach(addRow);
  updateCount();
  body.append(sectionCard('API tokens', count, null, form, secretBox, h('div', { class: 'table-wrap' }, table)));
}

// ----- apps --------------------------------------------------------------------------------

async function appsPage(body, app) {
  const loaded = await loadPage(body, app, appsPage, [() => get('/api/v1/apps'), () => get('/api/v1/skills')]);
  if (!loaded) return;
  const [apps, skills] = loaded;
  const skillName = new Map(skills.map((s) => [s.id, s.name]));
  const count = h('span', { class: 'card-meta' });
  const tbody = h('tbody');
  const rows = new Map();
  const updateCount = () => { count.textContent = `${apps.length} ${apps.length === 1 ? 'app' : 'apps'}`; };

  const skillSelect = (selected) => h('select', { name: 'default_skill_id' },
    h('option', { value: '' }, 'None (Unrouted)'),
    skills.map((s) => h('option', { value: s.id, selected: s.id === selected }, s.name)));
  const prioritySelect = (selected) => h('select', { name: 'default_priority' },
    [['normal', 'Normal'], ['high', 'High'], ['urgent', 'Urgent']].map(([value, label]) =>
      h('option', { value, selected: value === (selected || 'normal') }, label)));

  // New app.
  const alert = alertBox();
  const nameInput = h('input', { type: 'text', name: 'name', required: true, maxlength: 200 });
  const form = h('form', { class: 'form-panel', id: 'new-app-form', 'aria-label': 'New app' },
    h('h3', null, 'New app'),
    alert.node,
    h('div', { class: 'form-grid' },
      field('Name', nameInput),
      field('App ID', h('input', { type: 'text', name: 'id', maxlength: 64, pattern: '[a-z0-9_\\-]+', autocomplete: 'off', placeholder: 'generated when empty' }), 'a–z, 0–9, - and _; used by the SDK'),
      field('Channel', h('select', { name: 'channel', required: true }, h('option', { value: 'in_app' }, 'In-app (mobile SDK)'), h('option', { value: 'web' }, 'Web (widget)'))),
      field('Default skill', skillSelect(null)),
      field('Priority', prioritySelect('normal'), 'Where its new conversations start in the queue'),
      field('JWT issuer (iss)', h('input', { type: 'text', name: 'jwt_issuer', autocomplete: 'off' }), 'Required when JWT sign-in is allowed'),
      field('JWT audience (aud)', h('input', { type: 'text', name: 'jwt_audience', autocomplete: 'off' }), 'The app ID when empty')),
    h('div', { class: 'check-row' },
      checkbox('Allow JWT sign-in', h('input', { type: 'checkbox', name: 'allow_jwt', checked: true })),
      checkbox('Allow anonymous consumers', h('input', { type: 'checkbox', name: 'allow_anonymous' }))),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'button primary' }, 'Create app'),
      h('button', { type: 'button', class: 'button', onclick: () => { form.reset(); alert.hide(); toggle.close(); } }, 'Cancel')));
  const toggle = disclosure('New app', form, nameInput);
  handleSubmit(form, alert, async () => {
    const e = form.elements;
    const created = await post('/api/v1/apps', {
      id: e.id.value.trim() || null,
      name: e.name.value.trim(),
      channel: e.channel.value,
      allow_jwt: e.allow_jwt.checked,
      allow_anonymous: e.allow_anonymous.checked,
      jwt_issuer: e.jwt_issuer.value.trim() || null,
      jwt_audience: e.jwt_audience.value.trim() || null,
      default_skill_id: e.default_skill_id.value ? Number(e.default_skill_id.value) : null,
      default_priority: e.default_priority.value,
    });
    apps.push(created);
    const row = addRow(created);
    updateCount();
    form.reset();
    toggle.close();
    flash(row.element);
    app.toast(`Created app ${created.name} (${created.id}). Add a key so it can verify consumer tokens.`);
  });

  const table = h('table', { class: 'data-table', id: 'apps-table' },
    h('thead', null, h('tr', null,
      ['App', 'Channel', 'Sign-in', 'Issuer / audience', 'Default skill', 'Created'].map((t) => h('th', { scope: 'col' }, t)),
      h('th', { scope: 'col', class: 'actions' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    tbody);

  function addRow(item) {
    const cells = {
      name: h('th', { scope: 'row', class: 'name' }),
      channel: h('td'),
      auth: h('td'),
      jwt: h('td', { class: 'mono-cell' }),
      skill: h('td'),
      created: h('td'),
      actions: h('td', { class: 'actions' }),
    };
    const editButton = h('button', { type: 'button', class: 'button small', 'aria-expanded': 'false' }, 'Edit');
    const keysButton = h('button', { type: 'button', class: 'button small', 'aria-expanded': 'false' }, 'Keys');
    const pushButton = h('button', { type: 'button', class: 'button small', 'aria-expanded': 'false' }, 'Push');
    cells.actions.append(editButton, keysButton, pushButton);
    const element = h('tr', { dataset: { app: item.id } }, Object.values(cells));
    const row = { element, cells, item, editButton, keysButton, pushButton, panel: null, panelKind: null };
    rows.set(item.id, row);
    tbody.appendChild(element);
    fill(row);
    editButton.addEventListener('click', () => togglePanel(row, 'edit'));
    keysButton.addEventListener('click', () => togglePanel(row, 'keys'));
    pushButton.addEventListener('click', () => togglePanel(row, 'push'));
    return row;
  }

  function fill(row) {
    const { cells, item } = row;
    clear(cells.name).append(item.name, h('span', { class: 'sub mono' }, item.id));
    cells.channel.textContent = item.channel === 'web' ? 'Web' : item.channel === 'in_app' ? 'In-app' : item.channel;
    clear(cells.auth);
    if (item.allow_jwt) cells.auth.appendChild(badge('JWT'));
    if (item.allow_anonymous) cells.auth.appendChild(badge('Anonymous', 'badge-muted'));
    if (!item.allow_jwt && !item.allow_anonymous) cells.auth.appendChild(badge('None', 'badge-danger'));
    clear(cells.jwt);
    cells.jwt.append(
      h('span', { class: 'kv' }, h('span', { class: 'muted' }, 'iss '), item.jwt_issuer || '—'),
      h('span', { class: 'kv' }, h('span', { class: 'muted' }, 'aud '), item.jwt_audience || item.id, item.jwt_audience ? null : h('span', { class: 'muted' }, ' (app ID)')));
    cells.skill.textContent = item.default_skill_id == null ? '—' : skillName.get(item.default_skill_id) || '#' + item.default_skill_id;
    cells.created.textContent = item.created_at ? dateFormat.format(new Date(item.created_at)) : '—';
    row.editButton.setAttribute('aria-label', `Edit ${item.name}`);
    row.keysButton.setAttribute('aria-label', `Keys of ${item.name}`);
    row.pushButton.setAttribute('aria-label', `Push notifications of ${item.name}`);
  }

  const buttonOf = (row, kind) => ({ edit: row.editButton, keys: row.keysButton, push: row.pushButton })[kind];

  function togglePanel(row, kind) {
    const wasSame = row.panelKind === kind;
    for (const other of rows.values()) if (other.panel) closePanel(other, false);
    if (wasSame) {
      buttonOf(row, kind).focus();
      return;
    }
    const content = ({ edit: editForm, keys: keysPanel, push: pushPanel })[kind](row);
    content.addEventListener('keydown', (event) => { if (event.key === 'Escape') closePanel(row); });
    row.panel = h('tr', { class: 'editor-row' }, h('td', { colspan: 7 }, content));
    row.panelKind = kind;
    row.element.after(row.panel);
    row.element.classList.add('is-editing');
    buttonOf(row, kind).setAttribute('aria-expanded', 'true');
    content.querySelector('input,select,textarea')?.focus();
  }

  function closePanel(row, focus = true) {
    const kind = row.panelKind;
    row.panel?.remove();
    row.panel = null;
    row.panelKind = null;
    row.element.classList.remove('is-editing');
    row.editButton.setAttribute('aria-expanded', 'false');
    row.keysButton.setAttribute('aria-expanded', 'false');
    row.pushButton.setAttribute('aria-expanded', 'false');
    if (focus) buttonOf(row, kind || 'edit').focus();
  }

  function editForm(row) {
    const item = row.item;
    const alert = alertBox();
    const form = h('form', { class: 'form-panel inline-editor', 'aria-label': `Edit ${item.name}` },
      alert.node,
      h('div', { class: 'form-grid' },
        field('Name', h('input', { type: 'text', name: 'name', required: true, maxlength: 200, value: item.name })),
        field('Default skill', skillSelect(item.default_skill_id)),
        field('Priority', prioritySelect(item.default_priority), 'Where its new conversations start in the queue'),
        field('JWT issuer (iss)', h('input', { type: 'text', name: 'jwt_issuer', value: item.jwt_issuer || '' })),
        field('JWT audience (aud)', h('input', { type: 'text', name: 'jwt_audience', value: item.jwt_audience || '' }), 'The app ID when empty')),
      h('div', { class: 'check-row' },
        checkbox('Allow JWT sign-in', h('input', { type: 'checkbox', name: 'allow_jwt', checked: item.allow_jwt })),
        checkbox('Allow anonymous consumers', h('input', { type: 'checkbox', name: 'allow_anonymous', checked: item.allow_anonymous }))),
      h('p', { class: 'hint' }, `App ID ${item.id} and channel cannot be changed.`),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'button primary' }, 'Save changes'),
        h('button', { type: 'button', class: 'button', onclick: () => closePanel(row) }, 'Cancel')));
    handleSubmit(form, alert, async () => {
      const e = form.elements;
      const changes = {
        name: e.name.value.trim(),
        allow_jwt: e.allow_jwt.checked,
        allow_anonymous: e.allow_anonymous.checked,
        jwt_issuer: e.jwt_issuer.value.trim() || null,
        jwt_audience: e.jwt_audience.value.trim() || null,
        default_skill_id: e.default_skill_id.value ? Number(e.default_skill_id.value) : null,
        default_priority: e.default_priority.value,
      };
      row.item = await patch(`/api/v1/apps/${encodeURIComponent(item.id)}`, changes);
      const i = apps.findIndex((a) => a.id === item.id);
      if (i >= 0) apps[i] = row.item;
      fill(row);
      closePanel(row);
      flash(row.element);
      app.toast(`Saved app ${row.item.name}`);
    });
    return form;
  }

  function keysPanel(row) {
    const item = row.item;
    const path = `/api/v1/apps/${encodeURIComponent(item.id)}/keys`;
    const keysBody = h('tbody');
    const status = h('p', { class: 'loading' }, 'Loading keys…');
    const alert = alertBox();
    const material = h('textarea', { name: 'material', required: true, rows: 6, spellcheck: 'false', class: 'mono',
      placeholder: '-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----' });
    const form = h('form', { class: 'key-form', 'aria-label': `Add a key to ${item.name}` },
      h('h3', null, 'Add a key'),
      alert.node,
      field('Format', h('select', { name: 'format' }, h('option', { value: 'pem' }, 'PEM public key (RSA or P-256)'), h('option', { value: 'jwks' }, 'JWKS document (JSON)'))),
      field('Key', material, 'Public keys only. Consumer JWTs signed with the matching private key are accepted.'),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'button primary' }, 'Add key'),
        h('button', { type: 'button', class: 'button', onclick: () => closePanel(row) }, 'Close')));
    form.elements.format.addEventListener('change', () => {
      material.placeholder = form.elements.format.value === 'jwks' ? '{"keys":[{"kty":"EC", …}]}' : '-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----';
    });
    handleSubmit(form, alert, async () => {
      const key = await post(path, { format: form.elements.format.value, material: material.value.trim() });
      keysBody.querySelector('.placeholder-row')?.remove();
      const keyRow = keyRowOf(key);
      keysBody.appendChild(keyRow);
      flash(keyRow);
      form.reset();
      app.toast(`Added a ${key.format.toUpperCase()} key to ${item.name}`);
    });
    const emptyRow = () => h('tr', { class: 'placeholder-row' }, h('td', { colspan: 4 }, 'No keys yet: consumers cannot sign in with a JWT until you add one.'));

    function keyRowOf(key) {
      const deleteButton = h('button', { type: 'button', class: 'button small danger-text', 'aria-label': `Delete key ${key.id}` }, 'Delete');
      const actions = h('td', { class: 'actions' }, deleteButton);
      const tr = h('tr', { dataset: { key: key.id } },
        h('td', { class: 'mono' }, '#' + key.id),
        h('td', null, badge(key.format.toUpperCase())),
        h('td', null, h('span', { class: 'mono key-preview', title: key.material }, preview(key)), h('span', { class: 'sub' }, 'Added ' + when(key.created_at))),
        actions);
      deleteButton.addEventListener('click', () => confirmInline(actions, 'Delete this key? Tokens signed with it stop working.', 'Delete key', async () => {
        await del(`${path}/${key.id}`);
        tr.remove();
        if (!keysBody.children.length) keysBody.appendChild(emptyRow());
        app.toast(`Deleted key #${key.id}`);
      }, deleteButton));
      return tr;
    }

    get(path).then((keys) => {
      status.remove();
      if (!keys.length) keysBody.appendChild(emptyRow());
      keys.forEach((key) => keysBody.appendChild(keyRowOf(key)));
    }).catch((error) => {
      status.textContent = 'Could not load keys: ' + errorText(error);
      status.setAttribute('role', 'alert');
    });

    return h('div', { class: 'keys-panel' },
      h('div', null, h('h3', null, `Keys of ${item.name}`), status,
        h('table', { class: 'data-table compact', 'aria-label': `Keys of ${item.name}` },
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'ID'), h('th', { scope: 'col' }, 'Format'), h('th', { scope: 'col' }, 'Key'),
            h('th', { scope: 'col', class: 'actions' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
          keysBody)),
      form);
  }

  // Push notifications of one app: FCM and APNs credentials (secrets are write-only: the
  // server says whether they are set, never returns them) and a test push to one device.
  function pushPanel(row) {
    const item = row.item;
    const path = `/api/v1/apps/${encodeURIComponent(item.id)}/push`;
    const status = h('p', { class: 'loading' }, 'Loading push settings…');
    const fcmState = h('p', { class: 'hint push-state' });
    const apnsState = h('p', { class: 'hint push-state' });
    const fcmAlert = alertBox();
    const apnsAlert = alertBox();
    const testAlert = alertBox();
    const secret = (name, rows, placeholder) => h('textarea', { name, rows, spellcheck: 'false', autocomplete: 'off', class: 'mono', placeholder });
    const fcmForm = h('form', { class: 'push-form', 'aria-label': `FCM settings of ${item.name}` },
      h('h3', null, 'Firebase Cloud Messaging (Android)'), fcmState, fcmAlert.node,
      field('Project ID', h('input', { type: 'text', name: 'project_id', maxlength: 100, autocomplete: 'off', class: 'mono', placeholder: 'from the key file when empty' })),
      field('Service account key file (JSON)', secret('service_account_json', 5, '{"type": "service_account", …}'),
        'Firebase console → Project settings → Service accounts → Generate new private key. Stored, never shown again; leave empty to keep the stored one.'),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'button primary' }, 'Save FCM'),
        h('button', { type: 'button', class: 'button danger-text', name: 'remove' }, 'Remove')));
    const apnsForm = h('form', { class: 'push-form', 'aria-label': `APNs settings of ${item.name}` },
      h('h3', null, 'Apple Push Notification service (iOS)'), apnsState, apnsAlert.node,
      h('div', { class: 'form-grid' },
        field('Key ID', h('input', { type: 'text', name: 'key_id', maxlength: 10, autocomplete: 'off', class: 'mono' })),
        field('Team ID', h('input', { type: 'text', name: 'team_id', maxlength: 10, autocomplete: 'off', class: 'mono' })),
        field('Bundle ID', h('input', { type: 'text', name: 'bundle_id', maxlength: 155, autocomplete: 'off', class: 'mono', placeholder: 'com.example.app' })),
        field('Environment', h('select', { name: 'environment' },
          h('option', { value: 'production' }, 'Production (App Store, TestFlight)'), h('option', { value: 'sandbox' }, 'Sandbox (development builds)')))),
      field('Key (.p8 file)', secret('private_key', 5, '-----BEGIN PRIVATE KEY-----\n…'),
        'Apple developer account → Keys, with APNs enabled. Stored, never shown again; leave empty to keep the stored one.'),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'button primary' }, 'Save APNs'),
        h('button', { type: 'button', class: 'button danger-text', name: 'remove' }, 'Remove')));
    const testResult = h('p', { class: 'push-test-result', role: 'status' });
    const testForm = h('form', { class: 'push-form', 'aria-label': `Send a test push from ${item.name}` },
      h('h3', null, 'Send a test push'), testAlert.node,
      h('div', { class: 'form-grid' },
        field('Provider', h('select', { name: 'provider' }, h('option', { value: 'fcm' }, 'FCM'), h('option', { value: 'apns' }, 'APNs'))),
        field('Device token', h('input', { type: 'text', name: 'token', required: true, maxlength: 4096, autocomplete: 'off', class: 'mono' }), 'The token your app registered (log it in a debug build).')),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'button primary' }, 'Send test push')),
      testResult);

    function show(settings) {
      const f = settings.fcm;
      fcmState.textContent = f ? `Set up: project ${f.project_id}${f.client_email ? `, service account ${f.client_email}` : ''}; key file stored.` : 'Not set up: Android devices get no pushes.';
      fcmForm.elements.project_id.value = f ? f.project_id : '';
      fcmForm.elements.service_account_json.value = '';
      fcmForm.elements.remove.hidden = !f;
      const a = settings.apns;
      apnsState.textContent = a ? `Set up: key ${a.key_id}, team ${a.team_id}, ${a.bundle_id}, ${a.environment}; key stored.` : 'Not set up: iOS devices get no pushes.';
      apnsForm.elements.key_id.value = a ? a.key_id : '';
      apnsForm.elements.team_id.value = a ? a.team_id : '';
      apnsForm.elements.bundle_id.value = a ? a.bundle_id : '';
      apnsForm.elements.environment.value = a ? a.environment : 'production';
      apnsForm.elements.private_key.value = '';
      apnsForm.elements.remove.hidden = !a;
    }

    handleSubmit(fcmForm, fcmAlert, async () => {
      const e = fcmForm.elements;
      const body = { project_id: e.project_id.value.trim() || null };
      if (e.service_account_json.value.trim()) body.service_account_json = e.service_account_json.value.trim();
      show(await put(`${path}/fcm`, body));
      app.toast(`Saved the FCM settings of ${item.name}`);
    });
    handleSubmit(apnsForm, apnsAlert, async () => {
      const e = apnsForm.elements;
      const body = { key_id: e.key_id.value.trim(), team_id: e.team_id.value.trim(), bundle_id: e.bundle_id.value.trim(), environment: e.environment.value };
      if (e.private_key.value.trim()) body.private_key = e.private_key.value.trim();
      show(await put(`${path}/apns`, body));
      app.toast(`Saved the APNs settings of ${item.name}`);
    });
    for (const [form, provider, label] of [[fcmForm, 'fcm', 'FCM'], [apnsForm, 'apns', 'APNs']]) {
      const remove = form.elements.remove;
      const actions = remove.parentElement;
      remove.addEventListener('click', () => {
        const buttons = [...actions.childNodes];
        confirmInline(actions, `Remove the ${label} settings? Those devices get no pushes until they are set again.`, 'Remove', async () => {
          const settings = await del(`${path}/${provider}`);
          clear(actions);
          buttons.forEach((node) => actions.appendChild(node));
          show(settings);
          app.toast(`Removed the ${label} settings of ${item.name}`);
        }, remove);
      });
    }
    handleSubmit(testForm, testAlert, async () => {
      const e = testForm.elements;
      testResult.textContent = 'Sending…';
      const result = await post(`${path}/test`, { provider: e.provider.value, token: e.token.value.trim() });
      const answer = result.status == null ? 'no answer' : `HTTP ${result.status}`;
      testResult.textContent = result.sent
        ? `Sent: the provider accepted it (${answer}).`
        : `Not sent (${result.outcome}, ${answer}): ${result.reason || 'no reason given'}.`;
      testResult.classList.toggle('is-error', !result.sent);
    });

    get(path).then((settings) => { status.remove(); show(settings); }).catch((error) => {
      status.textContent = 'Could not load push settings: ' + errorText(error);
      status.setAttribute('role', 'alert');
    });
    return h('div', { class: 'push-panel' }, h('h3', null, `Push notifications of ${item.name}`), status, fcmForm, apnsForm, testForm,
      h('div', { class: 'form-actions' }, h('button', { type: 'button', class: 'button', onclick: () => closePanel(row) }, 'Close')));
  }

  apps.forEach(addRow);
  updateCount();
  if (!apps.length) tbody.appendChild(h('tr', { class: 'placeholder-row' }, h('td', { colspan: 7 }, 'No apps yet.')));
  body.append(sectionCard('Apps', count, toggle.button, form, h('div', { class: 'table-wrap' }, table)));
}

// A one-line hint of a key: the JWKS key ids/types, or the PEM body's start and end.
function preview(key) {
  const text = key.material || '';
  if (key.format === 'jwks') {
    try {
      const doc = JSON.parse(text);
      const keys = Array.isArray(doc.keys) ? doc.keys : [doc];
      return keys.map((k) => [k.kty, k.crv || k.alg, k.kid && `kid ${k.kid}`].filter(Boolean).join(' ')).join('; ') || 'JWKS';
    } catch (_) {
      return 'JWKS';
    }
  }
  const kind = /BEGIN ([A-Z ]+)-----/.exec(text);
  const b64 = text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return `${kind ? kind[1] : 'PEM'} · ${b64.slice(0, 12)}…${b64.slice(-12)}`;
}

// ----- automatic messages ------------------------------------------------------------------

// The triggers' names and when they fire; the server's list decides which exist and their
// order (GET /api/v1/automatic-messages `triggers`), these only label them.
const TRIGGER_INFO = {
  welcome: ['Welcome', 'When a consumer opens a conversation'],
  queued: ['Queued', 'When the conversation starts waiting for an agent'],
  wait_changed: ['Wait changed', 'When the estimated wait changes noticeably'],
  assigned: ['Assigned', 'When an agent takes the conversation'],
  transferred: ['Transferred', 'When the conversation moves to another skill or agent'],
  off_hours: ['Outside business hours', 'When a consumer writes while the brand or skill is closed'],
  inactive_warning: ['Inactivity warning', 'Before an auto-close (Settings → Auto-close)'],
  auto_closed: ['Auto-closed', 'When the conversation closes because the consumer stopped answering'],
  resolved: ['Resolved', 'When an agent resolves the conversation'],
};
const triggerLabel = (trigger) => TRIGGER_INFO[trigger]?.[0] || trigger;

async function messagesPage(body, app) {
  const loaded = await loadPage(body, app, messagesPage,
    [() => get('/api/v1/automatic-messages'), () => get('/api/v1/skills'), () => get('/api/v1/brand')]);
  if (!loaded) return;
  const [catalog, skills, brand] = loaded;
  let messages = catalog.messages;
  const triggers = catalog.triggers.map((t) => t.trigger);
  const example = new Map(catalog.triggers.map((t) => [t.trigger, t.example]));
  const skillName = new Map(skills.map((s) => [s.id, s.name]));
  const language = brand.default_language || 'en';
  const count = h('span', { class: 'card-meta' });
  const tbody = h('tbody');
  let editor = null; // the open inline editor: { row, button }

  const scopeText = (message) => (message.skill_id == null ? 'Brand-wide' : skillName.get(message.skill_id) || `Skill #${message.skill_id}`);
  const isMain = (message) => message.skill_id == null && message.language === language;
  const sameKey = (a, b) => a.trigger === b.trigger && (a.skill_id ?? null) === (b.skill_id ?? null) && a.language === b.language;

  // The form of one template. `fixedKey`: trigger, skill and language are what is edited (an
  // existing template, or a trigger's brand-wide one) and cannot be changed here.
  function messageForm(initial, { id, heading, fixedKey, onCancel, onSaved }) {
    const alert = alertBox();
    const triggerSelect = h('select', { name: 'trigger', required: true, disabled: fixedKey },
      triggers.map((t) => h('option', { value: t, selected: t === initial.trigger }, triggerLabel(t))));
    const scope = h('select', { name: 'skill_id', disabled: fixedKey },
      h('option', { value: '', selected: initial.skill_id == null }, 'Brand-wide'),
      skills.map((skill) => h('option', { value: String(skill.id), selected: skill.id === initial.skill_id }, skill.name)));
    const languageInput = h('input', { type: 'text', name: 'language', required: true, maxlength: 35, value: initial.language || language,
      autocomplete: 'off', spellcheck: 'false', class: 'input-short mono', readonly: fixedKey });
    const text = h('textarea', { name: 'text', rows: 3, required: true, class: 'automatic-text', placeholder: example.get(initial.trigger) || '' });
    text.value = initial.text || '';
    const whenHint = h('span', { class: 'hint' });
    const showWhen = () => {
      whenHint.textContent = TRIGGER_INFO[triggerSelect.value]?.[1] || '';
      text.placeholder = example.get(triggerSelect.value) || '';
    };
    triggerSelect.addEventListener('change', showWhen);
    showWhen();
    // Variables as buttons that insert themselves at the cursor.
    const chips = h('div', { class: 'variable-chips', role: 'group', 'aria-label': 'Insert a variable' },
      h('span', { class: 'hint' }, 'Variables: '),
      catalog.variables.map((variable) => h('button', { type: 'button', class: 'chip mono', title: `Insert ${variable}`, onclick: () => {
        const at = text.selectionStart ?? text.value.length;
        text.setRangeText(variable, at, text.selectionEnd ?? at, 'end');
        text.focus();
      } }, variable)));
    const preview = h('div', { class: 'automatic-preview', hidden: true, 'aria-live': 'polite' },
      h('span', { class: 'preview-label' }, 'Preview with sample values'), h('p', { class: 'preview-text' }));
    const previewButton = h('button', { type: 'button', class: 'button preview-button' }, 'Preview');
    const form = h('form', { class: 'form-panel automatic-form', id, 'aria-label': heading, novalidate: true },
      h('h3', null, heading),
      alert.node,
      h('div', { class: 'form-grid' },
        h('div', { class: 'field' }, h('label', { for: (triggerSelect.id = nid('trigger')) }, 'Trigger'), triggerSelect, whenHint),
        field('For', scope, 'A skill\'s own message replaces the brand-wide one in its conversations'),
        field('Language', languageInput, `A tag such as en or de; consumers whose language has no message get ${language}`)),
      field('Text', text, null, 'field-wide'),
      chips,
      checkbox('Enabled', h('input', { type: 'checkbox', name: 'enabled', checked: initial.enabled !== false }),
        'When off, nothing is sent for this trigger here (a skill\'s switched-off message does not fall back to the brand-wide one).'),
      preview,
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'button primary' }, 'Save message'),
        previewButton,
        h('button', { type: 'button', class: 'button', onclick: onCancel }, 'Cancel')));
    const request = () => {
      const e = form.elements;
      return {
        trigger: e.trigger.value,
        skill_id: e.skill_id.value === '' ? null : Number(e.skill_id.value),
        language: e.language.value.trim(),
        enabled: e.enabled.checked,
        text: e.text.value,
      };
    };
    previewButton.addEventListener('click', async () => {
      alert.hide();
      previewButton.disabled = true;
      try {
        const { text: rendered } = await post('/api/v1/automatic-messages/preview', { text: text.value, language: languageInput.value.trim() || language });
        preview.querySelector('.preview-text').textContent = rendered;
        preview.hidden = false;
      } catch (error) {
        preview.hidden = true;
        alert.show(errorText(error));
      } finally {
        previewButton.disabled = false;
      }
    });
    handleSubmit(form, alert, async () => {
      if (!text.value.trim()) throw new Error('Write the message text.');
      const saved = await put('/api/v1/automatic-messages', request());
      onSaved(saved);
    });
    form.addEventListener('keydown', (event) => { if (event.key === 'Escape') onCancel(); });
    return form;
  }

  // New message (any trigger, skill and language).
  const newForm = messageForm({ trigger: triggers[0], skill_id: null, language }, {
    id: 'new-automatic-message-form',
    heading: 'New automatic message',
    fixedKey: false,
    onCancel: () => toggle.close(),
    onSaved: (saved) => {
      newForm.reset();
      newForm.elements.trigger.dispatchEvent(new Event('change'));
      newForm.querySelector('.automatic-preview').hidden = true;
      toggle.close();
      stored(saved);
    },
  });
  const toggle = disclosure('New message', newForm, newForm.elements.text);

  function stored(saved) {
    messages = messages.filter((m) => m.id !== saved.id && !sameKey(m, saved)).concat([saved]);
    renderRows();
    const row = tbody.querySelector(`tr[data-message="${saved.id}"]`);
    if (row) {
      flash(row);
      row.scrollIntoView({ block: 'nearest' });
      row.querySelector('button.edit')?.focus({ preventScroll: true });
    }
    app.toast(`Saved the ${triggerLabel(saved.trigger)} message (${scopeText(saved)}, ${saved.language})`);
  }

  function closeEditor(focus = true) {
    if (!editor) return;
    editor.row.remove();
    editor.button.setAttribute('aria-expanded', 'false');
    if (focus && editor.button.isConnected) editor.button.focus();
    editor = null;
  }

  function openEditor(afterRow, button, initial, fixedKey, heading) {
    const same = editor?.button === button;
    closeEditor(false);
    if (same) {
      button.focus();
      return;
    }
    const form = messageForm(initial, {
      id: 'automatic-message-editor',
      heading,
      fixedKey,
      onCancel: () => closeEditor(),
      onSaved: (saved) => { editor = null; stored(saved); },
    });
    const row = h('tr', { class: 'editor-row' }, h('td', { colspan: 4 }, form));
    afterRow.after(row);
    button.setAttribute('aria-expanded', 'true');
    editor = { row, button };
    form.elements.text.focus();
  }

  function deleteButtonFor(message, actions) {
    const button = h('button', { type: 'button', class: 'button small danger-text delete',
      'aria-label': `Delete the ${triggerLabel(message.trigger)} message (${scopeText(message)}, ${message.language})` }, 'Delete');
    button.addEventListener('click', () => confirmInline(actions, 'Delete this message?', 'Delete', async () => {
      await del(`/api/v1/automatic-messages/${message.id}`);
      messages = messages.filter((m) => m.id !== message.id);
      renderRows();
      app.toast(`Deleted the ${triggerLabel(message.trigger)} message (${scopeText(message)}, ${message.language})`);
    }, button));
    return button;
  }

  function textCell(message, trigger) {
    if (message) return h('td', { class: 'template' }, h('span', { class: 'template-text' }, message.text));
    return h('td', { class: 'template' }, h('span', { class: 'muted' }, 'Not set — e.g. '), h('span', { class: 'template-example' }, example.get(trigger) || ''));
  }

  function statusCell(message) {
    if (!message) return h('td', { class: 'status' }, h('span', { class: 'muted' }, '—'));
    return h('td', { class: 'status' }, message.enabled ? badge('On', 'badge-ok') : badge('Switched off', 'badge-muted'));
  }

  function renderRows() {
    closeEditor(false);
    clear(tbody);
    for (const trigger of triggers) {
      const main = messages.find((m) => m.trigger === trigger && isMain(m));
      const actions = h('td', { class: 'actions' });
      const editButton = h('button', { type: 'button', class: 'button small edit', 'aria-expanded': 'false',
        'aria-label': `${main ? 'Edit' : 'Set up'} the ${triggerLabel(trigger)} message` }, main ? 'Edit' : 'Set up');
      const addButton = h('button', { type: 'button', class: 'button small add-override', 'aria-expanded': 'false',
        'aria-label': `Add a ${triggerLabel(trigger)} message for a skill or language` }, 'Add override');
      actions.append(editButton, addButton);
      if (main) actions.appendChild(deleteButtonFor(main, actions));
      const row = h('tr', { class: 'trigger-row', dataset: main ? { trigger, message: main.id } : { trigger } },
        h('th', { scope: 'row', class: 'name' }, triggerLabel(trigger), h('span', { class: 'sub' }, TRIGGER_INFO[trigger]?.[1] || trigger)),
        textCell(main, trigger), statusCell(main), actions);
      editButton.addEventListener('click', () => openEditor(row, editButton, main || { trigger, skill_id: null, language, text: '' }, true,
        `${triggerLabel(trigger)} — brand-wide, ${language}`));
      addButton.addEventListener('click', () => openEditor(lastRowOf(trigger), addButton,
        { trigger, skill_id: skills[0]?.id ?? null, language, text: main?.text || '' }, false, `${triggerLabel(trigger)} — for a skill or language`));
      tbody.appendChild(row);
      const overrides = messages.filter((m) => m.trigger === trigger && !isMain(m)).sort((a, b) =>
        (a.skill_id == null ? '' : scopeText(a)).localeCompare(b.skill_id == null ? '' : scopeText(b)) || a.language.localeCompare(b.language));
      for (const message of overrides) {
        const cells = h('td', { class: 'actions' });
        const edit = h('button', { type: 'button', class: 'button small edit', 'aria-expanded': 'false',
          'aria-label': `Edit the ${triggerLabel(trigger)} message (${scopeText(message)}, ${message.language})` }, 'Edit');
        cells.append(edit, deleteButtonFor(message, cells));
        const overrideRow = h('tr', { class: 'override-row', dataset: { trigger, message: message.id } },
          h('th', { scope: 'row', class: 'name override-name' }, h('span', { class: 'override-mark', 'aria-hidden': 'true' }, '↳ '),
            scopeText(message), ' ', badge(message.language, 'badge-muted')),
          textCell(message, trigger), statusCell(message), cells);
        edit.addEventListener('click', () => openEditor(overrideRow, edit, message, true,
          `${triggerLabel(trigger)} — ${scopeText(message)}, ${message.language}`));
        tbody.appendChild(overrideRow);
      }
    }
    const set = triggers.filter((t) => messages.some((m) => m.trigger === t && m.enabled)).length;
    count.textContent = `${messages.length} ${messages.length === 1 ? 'message' : 'messages'} · ${set} of ${triggers.length} triggers send one`;
  }

  function lastRowOf(trigger) {
    const rows = tbody.querySelectorAll(`tr[data-trigger="${trigger}"]`);
    return rows[rows.length - 1];
  }

  const table = h('table', { class: 'data-table automatic-table', id: 'automatic-messages-table' },
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Trigger'),
      h('th', { scope: 'col' }, `Brand-wide message (${language}); overrides below`),
      h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col', class: 'actions' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    tbody);
  renderRows();
  body.append(sectionCard('Automatic messages', count, toggle.button,
    h('p', { class: 'hint card-note' }, `Sent as system messages in the consumer's language when there is one, else in the brand's default language (${language}, under Settings). `,
      'Variables: ', catalog.variables.join(', '), '.'),
    newForm, h('div', { class: 'table-wrap' }, table)));
}

// ----- business hours (brand settings and the skill editor) ---------------------------------

const DAYS = [['monday', 'Monday'], ['tuesday', 'Tuesday'], ['wednesday', 'Wednesday'], ['thursday', 'Thursday'],
  ['friday', 'Friday'], ['saturday', 'Saturday'], ['sunday', 'Sunday']];
const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

// The IANA time zones the browser knows, as a <datalist> shared by every hours editor.
function zoneList() {
  let list = document.getElementById('adm-time-zones');
  if (list) return list.id;
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  list = h('datalist', { id: 'adm-time-zones' }, ['UTC', ...zones].map((zone) => h('option', { value: zone })));
  document.body.appendChild(list);
  return list.id;
}

// "Open now until Thu 17:00 · local time 2026-12-03 09:15 CET" from a {open, until, local_time}
// status; `zone` formats `until` in the schedule's time zone.
function hoursStatusText(status, zone, always) {
  if (!status) return '';
  if (always) return `Always open · local time ${status.local_time}`;
  let until = '';
  if (status.until != null) {
    let format;
    try {
      format = new Intl.DateTimeFormat(undefined, { timeZone: zone || 'UTC', weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
    } catch (_) {
      format = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
    }
    until = ' until ' + format.format(new Date(status.until));
  }
  return `${status.open ? 'Open now' : 'Closed'}${until} · local time ${status.local_time}`;
}

// Rows of `HH:MM`–`HH:MM` ranges with Add/Remove; `value()` the filled ones. Times are text
// (not type=time) because `24:00` and overnight ranges are allowed.
function rangeList(ranges, what, emptyText) {
  const list = h('div', { class: 'range-list' });
  const empty = h('span', { class: 'muted range-empty' }, emptyText);
  const sync = () => { empty.hidden = list.querySelector('.range') !== null; };
  const add = (range) => {
    const start = h('input', { type: 'text', class: 'input-time mono', inputmode: 'numeric', maxlength: 5, placeholder: '09:00', value: range?.start || '', 'aria-label': `${what}: opens` });
    const end = h('input', { type: 'text', class: 'input-time mono', inputmode: 'numeric', maxlength: 5, placeholder: '17:00', value: range?.end || '', 'aria-label': `${what}: closes` });
    const remove = h('button', { type: 'button', class: 'button small danger-text', 'aria-label': `Remove these hours (${what})` }, 'Remove');
    const row = h('span', { class: 'range' }, start, h('span', { class: 'range-dash', 'aria-hidden': 'true' }, '–'), end, remove);
    remove.addEventListener('click', () => { row.remove(); sync(); addButton.focus(); });
    list.insertBefore(row, addButton);
    sync();
    return start;
  };
  const addButton = h('button', { type: 'button', class: 'button small add-range', 'aria-label': `Add hours (${what})` }, '+ Hours');
  addButton.addEventListener('click', () => add().focus());
  list.append(empty, addButton);
  (ranges || []).forEach(add);
  sync();
  return {
    node: list,
    value: () => [...list.querySelectorAll('.range')].map((row) => {
      const [start, end] = row.querySelectorAll('input');
      return { start: start.value.trim(), end: end.value.trim() };
    }).filter((range) => range.start || range.end),
  };
}

// An editor of business hours: on/off (`offLabel`: "Always open" or "Follow the brand's
// hours"), time zone, the weekly shifts per day and dated exceptions. `value()` is the
// request's `hours`: null when off.
function hoursEditor(hours, { offLabel, onLabel, idPrefix }) {
  const mode = h('select', { id: `${idPrefix}-mode`, class: 'hours-mode' },
    h('option', { value: 'off', selected: !hours }, offLabel),
    h('option', { value: 'on', selected: !!hours }, onLabel));
  const zone = h('input', { type: 'text', id: `${idPrefix}-zone`, class: 'mono', list: zoneList(), autocomplete: 'off', spellcheck: 'false',
    value: hours?.time_zone || browserZone(), placeholder: 'Europe/Berlin' });
  const days = DAYS.map(([day, label]) => {
    const ranges = rangeList((hours?.weekly || []).filter((shift) => shift.day === day), label, 'Closed');
    return { day, label, ranges };
  });
  const weekly = h('table', { class: 'data-table compact hours-week', id: `${idPrefix}-weekly` },
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Day'), h('th', { scope: 'col' }, 'Open (HH:MM – HH:MM)'))),
    h('tbody', null, days.map(({ day, label, ranges }) => h('tr', { dataset: { day } }, h('th', { scope: 'row' }, label), h('td', null, ranges.node)))));
  const exceptionsBody = h('div', { class: 'hours-exceptions', id: `${idPrefix}-exceptions` });
  const exceptions = [];
  const addException = (rule) => {
    const date = h('input', { type: 'date', value: rule?.date || '', 'aria-label': 'Date' });
    const name = h('input', { type: 'text', maxlength: 100, value: rule?.name || '', placeholder: 'e.g. Christmas', 'aria-label': 'Name' });
    const ranges = rangeList(rule?.hours || [], 'exception', 'Closed all day');
    const remove = h('button', { type: 'button', class: 'button small danger-text', 'aria-label': 'Remove this date' }, 'Remove date');
    const row = h('div', { class: 'hours-exception' }, date, name, ranges.node, remove);
    const item = { row, value: () => {
      const value = { date: date.value, hours: ranges.value() };
      if (name.value.trim()) value.name = name.value.trim();
      return value;
    } };
    remove.addEventListener('click', () => { row.remove(); exceptions.splice(exceptions.indexOf(item), 1); addDate.focus(); });
    exceptions.push(item);
    exceptionsBody.appendChild(row);
    return date;
  };
  const addDate = h('button', { type: 'button', class: 'button small', id: `${idPrefix}-add-date` }, 'Add a date');
  addDate.addEventListener('click', () => addException().focus());
  (hours?.exceptions || []).forEach(addException);
  const details = h('div', { class: 'hours-details' },
    field('Time zone', zone, 'An IANA name such as Europe/Berlin or America/New_York; daylight saving follows it.'),
    h('h4', null, 'Every week'), weekly,
    h('p', { class: 'hint' }, 'A day without hours is closed. An end before the start runs overnight; 24:00 is midnight.'),
    h('h4', null, 'Holidays and special dates'),
    h('p', { class: 'hint' }, 'A date without hours is closed all day; with hours, they replace that day\'s.'),
    exceptionsBody, addDate);
  const sync = () => { details.hidden = mode.value === 'off'; };
  mode.addEventListener('change', sync);
  sync();
  return {
    node: h('div', { class: 'hours-editor' }, field('Business hours', mode), details),
    value: () => {
      if (mode.value === 'off') return null;
      const time_zone = zone.value.trim();
      if (!time_zone) throw new Error('Choose a time zone for the business hours.');
      const weekly = days.flatMap(({ day, ranges }) => ranges.value().map((range) => ({ day, ...range })));
      return { time_zone, weekly, exceptions: exceptions.map((item) => item.value()) };
    },
  };
}

// ----- settings ----------------------------------------------------------------------------

async function settingsPage(body, app) {
  const loaded = await loadPage(body, app, settingsPage,
    [() => get('/api/v1/brand'), () => get('/api/v1/skills'), () => get('/api/v1/brand/hours')]);
  if (!loaded) return;
  let [brand, skills, brandHours] = loaded;
  const alert = alertBox();
  // Auto-close: Off, or after N minutes / hours / days (the largest unit the stored seconds
  // divide into); the warning is given in minutes before the close. The auto-close inputs
  // have no name: the form's fields are read one by one, and only known ones are sent.
  const closeUnit = unitOf(brand.auto_close_secs);
  const afterInput = h('input', { type: 'number', id: 'auto-close-after', min: 1, step: 'any', inputmode: 'numeric', class: 'input-short',
    'aria-label': 'Auto-close after', value: brand.auto_close_secs == null ? '' : brand.auto_close_secs / AUTO_CLOSE_UNITS[closeUnit] });
  const warnInput = h('input', { type: 'number', id: 'auto-close-warn', min: 1, step: 'any', inputmode: 'numeric', class: 'input-short',
    placeholder: 'none', value: brand.auto_close_warn_secs == null ? '' : brand.auto_close_warn_secs / 60 });
  const surveyInput = h('input', { type: 'checkbox', id: 'auto-close-survey', checked: brand.auto_close_survey });
  const unitSelect = h('select', { id: 'auto-close-unit', 'aria-describedby': 'auto-close-hint' },
    [['off', 'Off'], ['minutes', 'After … minutes'], ['hours', 'After … hours'], ['days', 'After … days']].map(([value, label]) =>
      h('option', { value, selected: value === closeUnit }, label)));
  const automation = h('fieldset', { class: 'fieldset automation-settings', id: 'automation-settings' },
    h('legend', null, 'Automation'),
    field('Default language', h('input', { type: 'text', name: 'default_language', id: 'default-language', required: true, maxlength: 35, value: brand.default_language || 'en',
      autocomplete: 'off', spellcheck: 'false', class: 'input-short mono' }), 'A tag such as en or de: automatic messages for consumers whose language has none are sent in this one.'),
    h('div', { class: 'field' },
      h('label', { for: 'auto-close-unit', id: 'auto-close-label' }, 'Auto-close when the customer stops answering'),
      h('div', { class: 'auto-close-row' }, unitSelect, afterInput),
      h('span', { class: 'hint', id: 'auto-close-hint' }, 'Counted from the agent\'s last message; 1 minute to 90 days. Conversations waiting in the queue never auto-close.')),
    field('Warn before closing (minutes)', warnInput, 'Sends the Inactivity warning message this long before; empty for no warning.'),
    checkbox('Send the satisfaction survey when a conversation auto-closes', surveyInput),
    h('p', { class: 'hint' }, 'What consumers are told (welcome, queued, warning, closed…) is set under Automatic messages.'));
  // No min/max on retention: the server validates and its message is shown.
  const form = h('form', { class: 'settings-form', id: 'settings-form', 'aria-label': 'Brand settings', novalidate: true },
    alert.node,
    h('div', { class: 'form-grid' },
      field('Brand name', h('input', { type: 'text', name: 'name', id: 'brand-name', required: true, maxlength: 200, value: brand.name }), 'The display name of the brand'),
      field('Brand ID', h('input', { type: 'text', name: 'brand_id', id: 'brand-id', value: brand.id, readonly: true, class: 'mono' }), 'Apps pass it to the SDK (Client::builder); cannot be changed')),
    checkbox('Push notifications say only "You have a new message"', h('input', { type: 'checkbox', name: 'push_masked', id: 'push-masked', checked: brand.push_masked }),
      'No message text or agent name leaves for Apple or Google; the app still opens the right conversation.'),
    checkbox('Ask customers for a satisfaction score (CSAT)', h('input', { type: 'checkbox', name: 'csat_enabled', id: 'csat-enabled', checked: brand.csat_enabled }),
      'After an agent resolves a conversation, the customer is asked to rate it 1–5.'),
    field('Keep transcripts for (days)', h('input', { type: 'number', name: 'retention_days', id: 'retention-days', required: true, step: 1, value: brand.retention_days, inputmode: 'numeric', class: 'input-short' }),
      '1 to 3650 days; 396 = 13 months. Older conversations are hidden and later deleted.'),
    field('Default skill', h('select', { name: 'default_skill_id', id: 'default-skill' },
      h('option', { value: '', selected: brand.default_skill_id == null }, 'None (Unrouted queue)'),
      skills.map((skill) => h('option', { value: String(skill.id), selected: brand.default_skill_id === skill.id }, skill.name))),
      'Where new conversations go when their app names no skill.'),
    checkbox('Agents who write to a customer first may read the customer\'s earlier conversations',
      h('input', { type: 'checkbox', name: 'follow_up_history', id: 'follow-up-history', checked: brand.follow_up_history }),
      'Off: an agent who starts a conversation by writing to a customer sees only that conversation and the ones they handled. An agent the customer is routed to always sees the whole history.'),
    field('Agent grace period (seconds)', h('input', { type: 'number', name: 'agent_grace_secs', id: 'agent-grace', required: true, step: 1, value: brand.agent_grace_secs, inputmode: 'numeric', class: 'input-short' }),
      '0 to 3600. When an agent\'s workspace disconnects (or they choose Offline), their conversations wait this long for them, then return to the queue.'),
    automation,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'button primary', id: 'settings-save' }, 'Save settings')));
  const showAutoClose = () => {
    const off = unitSelect.value === 'off';
    afterInput.disabled = off;
    afterInput.hidden = off;
    warnInput.disabled = off;
    surveyInput.disabled = off;
  };
  unitSelect.addEventListener('change', () => {
    showAutoClose();
    if (unitSelect.value !== 'off') afterInput.focus();
  });
  showAutoClose();
  handleSubmit(form, alert, async () => {
    const e = form.elements;
    const name = e.name.value.trim();
    if (!name) throw new Error('Brand name is required.');
    const raw = e.retention_days.value.trim();
    const days = Number(raw);
    if (raw === '' || !Number.isInteger(days)) throw new Error('Retention must be a whole number of days.');
    const graceRaw = e.agent_grace_secs.value.trim();
    const grace = Number(graceRaw);
    if (graceRaw === '' || !Number.isInteger(grace)) throw new Error('The grace period must be a whole number of seconds.');
    const defaultSkill = e.default_skill_id.value === '' ? null : Number(e.default_skill_id.value);
    const defaultLanguage = e.default_language.value.trim();
    if (!defaultLanguage) throw new Error('The default language is required (a tag such as en or de).');
    // Auto-close in seconds (null: off); the warning in minutes before it (empty: none).
    let autoClose = null;
    let warn = null;
    if (unitSelect.value !== 'off') {
      const after = Number(afterInput.value.trim());
      if (afterInput.value.trim() === '' || !(after > 0)) throw new Error('Say after how long to auto-close, or choose Off.');
      autoClose = Math.round(after * AUTO_CLOSE_UNITS[unitSelect.value]);
      const warnRaw = warnInput.value.trim();
      if (warnRaw !== '') {
        const minutes = Number(warnRaw);
        if (!(minutes > 0)) throw new Error('The warning must be a number of minutes, or empty for none.');
        warn = Math.round(minutes * 60);
      }
    }
    // Only fields the server knows (it refuses unknown ones).
    brand = await patch('/api/v1/brand', {
      name,
      csat_enabled: e.csat_enabled.checked,
      push_masked: e.push_masked.checked,
      retention_days: days,
      agent_grace_secs: grace,
      default_skill_id: defaultSkill,
      default_language: defaultLanguage,
      auto_close_secs: autoClose,
      auto_close_warn_secs: warn,
      auto_close_survey: surveyInput.checked,
      follow_up_history: e.follow_up_history.checked,
    });
    e.name.value = brand.name;
    e.agent_grace_secs.value = brand.agent_grace_secs;
    e.retention_days.value = brand.retention_days;
    e.csat_enabled.checked = brand.csat_enabled;
    e.follow_up_history.checked = brand.follow_up_history;
    e.push_masked.checked = brand.push_masked;
    e.default_language.value = brand.default_language;
    app.toast(brand.auto_close_secs == null ? 'Settings saved' : `Settings saved; conversations auto-close after ${spell(brand.auto_close_secs)} without an answer`);
  });

  body.append(h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', null, 'Brand')), form), brandHoursCard(brandHours, app));
}

// The brand's business hours (PUT /api/v1/brand/hours): every skill without its own follows
// them; what happens to a conversation opened while closed; the status now.
function brandHoursCard(stored, app) {
  const alert = alertBox();
  const editor = hoursEditor(stored.hours, { offLabel: 'Always open', onLabel: 'Open at set hours', idPrefix: 'brand-hours' });
  const status = h('p', { class: 'hours-status', id: 'brand-hours-status', role: 'status' });
  const showStatus = (saved) => {
    status.textContent = hoursStatusText(saved.status, saved.hours?.time_zone, !saved.hours);
    status.classList.toggle('is-open', saved.status.open);
  };
  showStatus(stored);
  const offHours = h('select', { id: 'off-hours', name: 'off_hours' },
    h('option', { value: 'queue', selected: stored.off_hours !== 'close' }, 'Keep them waiting for the opening'),
    h('option', { value: 'close', selected: stored.off_hours === 'close' }, 'Close them after the off-hours message'));
  const form = h('form', { class: 'settings-form hours-form', id: 'brand-hours-form', 'aria-label': 'Business hours', novalidate: true },
    alert.node, status, editor.node,
    field('Conversations opened while closed', offHours, 'Either way they get the Outside business hours message (Automatic messages).'),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'button primary', id: 'brand-hours-save' }, 'Save hours')));
  handleSubmit(form, alert, async () => {
    const saved = await put('/api/v1/brand/hours', { hours: editor.value(), off_hours: offHours.value });
    showStatus(saved);
    app.toast(saved.hours ? 'Business hours saved' : 'Business hours off: always open');
  });
  return h('section', { class: 'card', id: 'brand-hours' },
    h('div', { class: 'card-head' }, h('h2', null, 'Business hours')),
    h('p', { class: 'hint card-note' }, 'Skills without hours of their own follow these (Admin → Skills → Hours).'),
    form);
}

// Seconds per auto-close unit.
const AUTO_CLOSE_UNITS = { minutes: 60, hours: 3600, days: 86400 };

// The unit to show a stored auto-close in: the largest that divides it, 'off' when null.
function unitOf(secs) {
  if (secs == null) return 'off';
  if (secs % 86400 === 0) return 'days';
  if (secs % 3600 === 0) return 'hours';
  return 'minutes';
}

// "30 minutes", "2 hours", "1 day".
function spell(secs) {
  const unit = unitOf(secs);
  const n = Math.round((secs / AUTO_CLOSE_UNITS[unit]) * 100) / 100;
  return `${n} ${n === 1 ? unit.slice(0, -1) : unit}`;
}
