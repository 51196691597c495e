// The Switchboard web app shell: login, the app frame (sidebar, top bar, connection banner),
// the hash router and the shared Live socket.
//
// On load it asks GET /api/v1/me; without a session it shows the login screen. Once logged
// in it opens the agent socket (live.js) and renders the page of the current hash route
// into <main>. Pages are ES modules loaded on demand that export
// `render(root, ctx, routeParts)` → optional cleanup function, with ctx = {me, live, notify}
// (see /work/notes/workspace-contract.md). The workspace (Inbox) lives in workspace.js;
// dashboard.js, reports.js, admin.js and privacy.js (masking, data, audit log) are the manager
// and admin pages.

import { post, get, ApiError, setSessionLostHandler } from './api.js';
import { h, clear, sentence, initials } from './dom.js';
import { icon } from './icons.js';
import { Live } from './live.js';

const EXPIRED = 'Your session has expired. Please log in again.';
const STATES = [
  ['online', 'Online'],
  ['away', 'Away'],
  ['back_soon', 'Back soon'],
  ['offline', 'Offline'],
];
const ROLE_LABEL = { agent: 'Agent', manager: 'Manager', admin: 'Admin' };
const TOAST_MS = 5000;
const MAX_TOASTS = 3;

const isManager = (me) => me.role === 'manager' || me.role === 'admin';
const isAdmin = (me) => me.role === 'admin';
const takesChats = (me) => me.role === 'agent' || me.max_concurrent > 0;

// Route key → page. `group` orders the sidebar; `load` imports the page module.
const ROUTES = [
  { key: 'inbox', title: 'Inbox', icon: 'inbox', group: 'Workspace', allowed: takesChats, load: () => import('./workspace.js') },
  { key: 'dashboard', title: 'Dashboard', icon: 'dashboard', group: 'Manage', allowed: isManager, load: () => import('./dashboard.js') },
  { key: 'reports', title: 'Reports', icon: 'reports', group: 'Manage', allowed: isManager, load: () => import('./reports.js') },
  { key: 'admin/agents', title: 'Agents', icon: 'agents', group: 'Admin', allowed: isAdmin, load: () => import('./admin.js') },
  { key: 'admin/skills', title: 'Skills', icon: 'skills', group: 'Admin', allowed: isAdmin, load: () => import('./admin.js') },
  { key: 'admin/apps', title: 'Apps', icon: 'apps', group: 'Admin', allowed: isAdmin, load: () => import('./admin.js') },
  { key: 'admin/messages', title: 'Automatic messages', icon: 'bolt', group: 'Admin', allowed: isAdmin, load: () => import('./admin.js') },
  { key: 'admin/tokens', title: 'API tokens', icon: 'key', group: 'Admin', allowed: isAdmin, load: () => import('./admin.js') },
  { key: 'admin/settings', title: 'Settings', icon: 'settings', group: 'Admin', allowed: isAdmin, load: () => import('./admin.js') },
  { key: 'admin/masking', title: 'Masking', icon: 'shield', group: 'Admin', allowed: isAdmin, load: () => import('./privacy.js') },
  { key: 'admin/data', title: 'Privacy & data', icon: 'data', group: 'Admin', allowed: isAdmin, load: () => import('./privacy.js') },
  { key: 'admin/audit', title: 'Audit log', icon: 'log', group: 'Admin', allowed: isAdmin, load: () => import('./privacy.js') },
];

const appRoot = document.getElementById('app');
let session = null; // {me, live, frame, cleanup, navToken, offs}

// ---- boot and login ------------------------------------------------------------------

async function boot() {
  setSessionLostHandler(() => endSession(EXPIRED));
  try {
    const me = await get('/api/v1/me');
    startSession(me);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showLogin(error.code === 'session_expired' ? EXPIRED : '');
    } else {
      showFatal(error);
    }
  }
}

function showFatal(error) {
  clear(appRoot).appendChild(
    h('div', { class: 'login-screen' },
      h('div', { class: 'login-card', role: 'alert' },
        h('h1', { class: 'login-title' }, 'Switchboard is not reachable'),
        h('p', { class: 'muted' }, error.message || String(error)),
        h('button', { class: 'button primary', type: 'button', onclick: () => location.reload() }, 'Try again'))));
}

function showLogin(message) {
  const wanted = location.hash && location.hash !== '#/login' ? location.hash : '';
  history.replaceState(null, '', '#/login');
  document.title = 'Sign in · Switchboard';
  const email = h('input', { id: 'login-email', type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { id: 'login-error', class: 'form-error', role: 'alert', hidden: !message }, message || '');
  const submit = h('button', { id: 'login-submit', class: 'button primary block', type: 'submit' }, 'Sign in');
  // Shown only when the email and password open accounts in several brands (staff emails
  // are unique per brand): the server then asks which one.
  const brand = h('input', { id: 'login-brand', type: 'text', name: 'brand', autocomplete: 'organization', spellcheck: 'false' });
  const brandRow = h('div', { class: 'login-brand-row', hidden: true },
    h('label', { for: 'login-brand' }, 'Brand'), brand);
  const form = h('form', { class: 'login-form', novalidate: true },
    h('label', { for: 'login-email' }, 'Email'), email,
    h('label', { for: 'login-password' }, 'Password'), password,
    brandRow, error, submit);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    login({ email, password, brand, brandRow, error, submit, wanted });
  });
  clear(appRoot).appendChild(
    h('div', { class: 'login-screen' },
      h('main', { class: 'login-card' },
        h('div', { class: 'login-brand' }, icon('logo', 'logo-mark'), h('span', {}, 'Switchboard')),
        h('h1', { class: 'login-title' }, 'Sign in to your workspace'),
        h('p', { class: 'muted login-lead' }, 'Answer your customers, wherever they write from.'),
        form)));
  email.focus();
}

async function login({ email, password, brand, brandRow, error, submit, wanted }) {
  if (!email.value.trim() || !password.value) {
    showLoginError(error, 'Enter your email and password.');
    return;
  }
  submit.disabled = true;
  submit.textContent = 'Signing in…';
  const body = { email: email.value.trim(), password: password.value };
  if (!brandRow.hidden && brand.value.trim()) body.brand = brand.value.trim();
  try {
    const result = await post('/api/v1/auth/login', body);
    if (wanted) history.replaceState(null, '', wanted);
    startSession(result.user);
  } catch (failure) {
    submit.disabled = false;
    submit.textContent = 'Sign in';
    if (failure.code === 'brand_required') {
      brandRow.hidden = false;
      showLoginError(error, sentence(failure.message) + ' Enter the brand and sign in again.');
      brand.focus();
      return;
    }
    showLoginError(error, sentence(failure.message) || 'Sign-in failed.');
    password.select();
  }
}

function showLoginError(node, text) {
  node.textContent = text;
  node.hidden = false;
}

// ---- session -------------------------------------------------------------------------

function startSession(me) {
  if (session) endSession(null);
  const live = new Live();
  session = { me, live, cleanup: null, navToken: 0, offs: [] };
  session.frame = buildFrame(me);
  clear(appRoot).appendChild(session.frame.element);
  session.offs.push(
    live.on('connection', (event) => showConnection(event)),
    live.on('welcome', (frame) => reflectState(frame.me?.state)),
    live.on('session-lost', () => endSession(EXPIRED)),
    listen(window, 'hashchange', route),
  );
  reflectState(me.state);
  live.start();
  route();
}

// Tears the session down; shows the login screen with `message` unless it is null.
function endSession(message) {
  if (!session) return;
  const current = session;
  session = null;
  runCleanup(current);
  for (const off of current.offs) off();
  current.live.stop();
  if (message !== null) showLogin(message);
}

async function logout() {
  const current = session;
  endSession(null);
  try {
    await post('/api/v1/auth/logout');
  } catch (error) {
    console.warn('logout failed', error);
  }
  if (current) showLogin('');
}

function listen(target, type, fn) {
  target.addEventListener(type, fn);
  return () => target.removeEventListener(type, fn);
}

// ---- frame: sidebar, top bar, banner --------------------------------------------------

function buildFrame(me) {
  const title = h('h1', { class: 'page-title' }, '');
  const stateSelect = buildStateSelect();
  const banner = h('div', { id: 'connection-banner', class: 'connection-banner', role: 'status', hidden: true },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Connection lost — reconnecting…');
  const main = h('main', { id: 'main', class: 'page', tabindex: '-1' });
  const toasts = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
  const nav = buildNav(me);
  const element = h('div', { class: 'app-frame' },
    h('a', { class: 'skip-link', href: '#main', onclick: skipToMain }, 'Skip to content'),
    nav.element,
    h('div', { class: 'app-column' },
      h('header', { class: 'topbar' },
        title,
        h('div', { class: 'topbar-tools' },
          // Availability only matters to people who take conversations.
          takesChats(me) ? stateSelect.element : null,
          h('div', { class: 'user-chip' },
            h('span', { class: 'avatar small', 'aria-hidden': 'true' }, initials(me.name)),
            h('span', { class: 'user-text' },
              h('span', { class: 'user-name' }, me.name),
              h('span', { class: 'user-role' }, ROLE_LABEL[me.role] || me.role))),
          h('button', { id: 'logout', class: 'button ghost', type: 'button', onclick: logout }, icon('logout'), 'Log out'))),
      banner,
      main),
    toasts);
  return { element, title, main, banner, toasts, nav, state: stateSelect };
}

function skipToMain(event) {
  event.preventDefault();
  session?.frame.main.focus();
}

function buildNav(me) {
  const links = new Map();
  const groups = [];
  for (const routeDef of ROUTES.filter((r) => r.allowed(me))) {
    let group = groups.find((g) => g.name === routeDef.group);
    if (!group) groups.push((group = { name: routeDef.group, items: [] }));
    const link = h('a', { class: 'nav-link', href: '#/' + routeDef.key, title: routeDef.title, 'aria-label': routeDef.title }, icon(routeDef.icon), h('span', {}, routeDef.title));
    links.set(routeDef.key, link);
    group.items.push(h('li', {}, link));
  }
  const element = h('nav', { class: 'sidebar', 'aria-label': 'Main' },
    h('div', { class: 'sidebar-brand' }, icon('logo', 'logo-mark'), h('span', {}, 'Switchboard')),
    groups.map((group) => h('div', { class: 'nav-group' },
      h('p', { class: 'nav-heading' }, group.name),
      h('ul', { class: 'nav-list' }, group.items))),
    h('p', { class: 'sidebar-foot' }, 'Self-hosted customer messaging'));
  return { element, links };
}

function buildStateSelect() {
  const select = h('select', { id: 'agent-state', 'aria-label': 'Your availability' },
    STATES.map(([value, label]) => h('option', { value }, label)));
  const dot = h('span', { class: 'state-dot', 'aria-hidden': 'true' });
  select.addEventListener('change', () => changeState(select));
  const element = h('div', { class: 'state-picker' }, dot, select);
  return { element, select, dot };
}

async function changeState(select) {
  if (!session) return;
  const previous = select.dataset.current;
  const wanted = select.value;
  paintState(wanted);
  try {
    await session.live.request({ t: 'state', state: wanted });
    select.dataset.current = wanted;
    session.me.state = wanted;
    announceState(wanted);
  } catch (error) {
    paintState(previous);
    notify('Could not change your availability: ' + sentence(error.message), 'error');
  }
}

function reflectState(state) {
  if (!session || !state) return;
  session.me.state = state;
  session.frame.state.select.dataset.current = state;
  paintState(state);
  announceState(state);
}

// Tells the pages (the inbox's empty state) the agent's settled state.
function announceState(state) {
  window.dispatchEvent(new CustomEvent('agent-state', { detail: state }));
}

function paintState(state) {
  const { select, element } = session.frame.state;
  select.value = state;
  element.dataset.state = state;
}

function showConnection({ state, everConnected }) {
  if (!session) return;
  // The first connection attempt stays quiet; a failure or a later loss shows the banner.
  const quiet = state === 'online' || (state === 'connecting' && !everConnected);
  session.frame.banner.hidden = quiet;
  session.frame.element.classList.toggle('is-offline', !quiet);
}

// Short notice at the bottom right ("Conversation with Jane was transferred to Bob").
function notify(text, kind = 'info') {
  if (!session) return;
  const toast = h('div', { class: 'toast ' + kind }, text);
  const { toasts } = session.frame;
  toasts.appendChild(toast);
  while (toasts.childElementCount > MAX_TOASTS) toasts.firstElementChild.remove();
  setTimeout(() => toast.remove(), TOAST_MS);
}

// ---- router --------------------------------------------------------------------------

function defaultRoute(me) {
  if (isManager(me)) return 'dashboard';
  return takesChats(me) ? 'inbox' : 'dashboard';
}

function currentParts() {
  return location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
}

async function route() {
  if (!session) return;
  const parts = currentParts();
  const key = parts.join('/');
  const routeDef = ROUTES.find((r) => r.key === key);
  if (!routeDef || !routeDef.allowed(session.me)) {
    const fallback = parts[0] === 'admin' && isAdmin(session.me) ? 'admin/agents' : defaultRoute(session.me);
    history.replaceState(null, '', '#/' + fallback);
    return route();
  }
  const current = session;
  const token = ++current.navToken;
  runCleanup(current);
  markActive(current, routeDef);
  const root = clear(current.frame.main);
  root.className = 'page page-' + routeDef.key.replace('/', '-');
  let page;
  try {
    page = await routeDef.load();
  } catch (error) {
    console.warn('page module not available', routeDef.key, error);
    if (token === current.navToken) showUnavailable(root, routeDef);
    return;
  }
  if (session !== current || token !== current.navToken) return;
  try {
    const cleanup = page.render(root, { me: current.me, live: current.live, notify }, parts);
    current.cleanup = typeof cleanup === 'function' ? cleanup : null;
  } catch (error) {
    console.error('page failed to render', routeDef.key, error);
    showUnavailable(root, routeDef);
  }
}

function runCleanup(current) {
  const cleanup = current.cleanup;
  current.cleanup = null;
  if (!cleanup) return;
  try {
    cleanup();
  } catch (error) {
    console.error('page cleanup failed', error);
  }
}

function markActive(current, routeDef) {
  current.frame.title.textContent = routeDef.title;
  document.title = routeDef.title + ' · Switchboard';
  for (const [key, link] of current.frame.nav.links) {
    if (key === routeDef.key) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function showUnavailable(root, routeDef) {
  clear(root).appendChild(
    h('div', { class: 'empty-state' },
      h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, icon(routeDef.icon)),
      h('h2', {}, routeDef.title + ' is not available'),
      h('p', { class: 'muted' }, 'This page is not part of this version of Switchboard yet.')));
}

boot();
