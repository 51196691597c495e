// DOM helpers. Text is always set with textContent, never parsed as HTML: message text,
// names and everything else from the server or a user stays text (XSS-safe by construction).

// h('button', {class: 'primary', onclick: fn, 'aria-label': 'Send'}, 'Send', child, ...)
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// "42 s", "3 min", "1 h 5 min", "2 d".
export function duration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '—';
  secs = Math.max(0, Math.round(secs));
  if (secs < 60) return secs + ' s';
  const mins = Math.floor(secs / 60);
  if (mins < 60) return mins + ' min';
  const hours = Math.floor(mins / 60);
  if (hours < 48) return hours + ' h' + (mins % 60 ? ' ' + (mins % 60) + ' min' : '');
  return Math.floor(hours / 24) + ' d';
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

// Clock time for today, date and time otherwise.
export function when(ms) {
  const date = new Date(ms);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

// Milliseconds of the start of the local day of `ms` (default now).
export function startOfDay(ms = Date.now()) {
  const date = new Date(ms);
  date.setHours(0, 0, 0, 0);
  return date.getTime();
}

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const yearDayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

// Clock time only ("14:05").
export function clock(ms) {
  return timeFormat.format(new Date(ms));
}

// Date only ("25 Nov 2026").
export function date(ms) {
  return dateFormat.format(new Date(ms));
}

// Label of a day separator: "Today", "Yesterday", "Monday 23 November", or with the year when not this year.
export function dayLabel(ms) {
  const day = startOfDay(ms);
  const today = startOfDay();
  if (day === today) return 'Today';
  if (day === startOfDay(today - 12 * 3600 * 1000)) return 'Yesterday';
  const sameYear = new Date(ms).getFullYear() === new Date().getFullYear();
  return (sameYear ? dayFormat : yearDayFormat).format(new Date(ms));
}

// A server message as a sentence: "wrong email or password" → "Wrong email or password."
export function sentence(text) {
  const trimmed = String(text || '').trim();
  if (!trimmed) return '';
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?…]$/.test(capital) ? capital : capital + '.';
}

// Up to two initials of a display name, for avatars ("Jane Doe" → "JD").
export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).map((w) => w.replace(/[^\p{L}\p{N}]/gu, '')).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((word) => [...word][0].toUpperCase()).join('') || '?';
}

// A random 22-character base64url id (128 bits), e.g. for message `cid`s. Works on plain
// http too, where crypto.randomUUID is not available.
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// Sets a node's text only when it changed (cheap in-place updates of long lists).
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

// A 20×20 stroked SVG icon from path data (see icons.js); decorative, hidden from screen readers.
export function svgIcon(paths, className = 'icon') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', className);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.appendChild(path);
  }
  return svg;
}
