// The agent's conversation list (#conversation-list), used by workspace.js.
//
// One <li data-conversation> per open conversation, built once and then updated in place
// (only the texts that changed are written), ordered by who has waited longest: the
// waiting_since time, oldest first; conversations where the agent spoke last follow, most
// recent activity first. Reordering moves only the rows that are out of place, so a list
// of hundreds of rows stays cheap on every event. Waiting times refresh every 15 s.
// Up/Down arrows move between rows.

import { h, setText, duration, clock, initials } from './dom.js';

const WAIT_WARN_SECS = 120;
const WAIT_LATE_SECS = 600;

export function createConversationList({ onSelect }) {
  const list = h('ul', { id: 'conversation-list', class: 'conversation-list', 'aria-label': 'Your conversations' });
  const rows = new Map(); // conversation id → {li, parts, entry}
  let selected = null;
  list.addEventListener('keydown', moveFocus);

  function upsert(entry) {
    let row = rows.get(entry.id);
    if (!row) {
      row = buildRow(entry);
      rows.set(entry.id, row);
      list.appendChild(row.li);
    }
    row.entry = entry;
    paint(row);
  }

  function buildRow(entry) {
    const parts = {
      avatar: h('span', { class: 'avatar', 'aria-hidden': 'true' }),
      name: h('span', { class: 'conv-name' }),
      time: h('span', { class: 'conv-time' }),
      waiting: h('span', { class: 'waiting' }),
      preview: h('span', { class: 'preview' }),
      unread: h('span', { class: 'unread', role: 'img' }),
      meta: h('span', { class: 'conv-meta' }),
    };
    const button = h('button', { type: 'button', class: 'conv-button' },
      parts.avatar,
      h('span', { class: 'conv-body' },
        h('span', { class: 'conv-line' }, parts.name, parts.time),
        h('span', { class: 'conv-line' }, parts.preview),
        h('span', { class: 'conv-line small' }, parts.meta, parts.waiting)));
    const li = h('li', { class: 'conv-row', dataset: { conversation: entry.id } }, button);
    button.addEventListener('click', () => onSelect(entry.id));
    return { li, button, parts, entry };
  }

  function paint(row) {
    const { entry, parts } = row;
    setText(parts.name, entry.displayName);
    setText(parts.avatar, initials(entry.displayName));
    setText(parts.preview, previewText(entry));
    setText(parts.time, entry.lastMessage ? clock(entry.lastMessage.ts) : '');
    setText(parts.meta, [channelLabel(entry.channel), entry.skill].filter(Boolean).join(' · '));
    paintUnread(row, entry.unread || 0);
    paintWaiting(row);
  }

  // The badge exists only while there is something unread.
  function paintUnread(row, unread) {
    const badge = row.parts.unread;
    if (unread === 0) {
      badge.remove();
    } else {
      if (!badge.isConnected) row.parts.preview.after(badge);
      setText(badge, unread > 99 ? '99+' : unread);
      badge.setAttribute('aria-label', unread + ' unread');
    }
    row.li.classList.toggle('has-unread', unread > 0);
  }

  function paintWaiting(row) {
    const since = row.entry.waitingSince;
    const secs = since ? (Date.now() - since) / 1000 : null;
    row.parts.waiting.hidden = secs === null;
    setText(row.parts.waiting, secs === null ? '' : 'Waiting ' + (secs < 60 ? '<1 min' : duration(secs)));
    row.parts.waiting.classList.toggle('warn', secs !== null && secs >= WAIT_WARN_SECS && secs < WAIT_LATE_SECS);
    row.parts.waiting.classList.toggle('late', secs !== null && secs >= WAIT_LATE_SECS);
  }

  function remove(id) {
    const row = rows.get(id);
    if (!row) return;
    const hadFocus = row.li.contains(document.activeElement);
    const next = row.li.nextElementSibling || row.li.previousElementSibling;
    row.li.remove();
    rows.delete(id);
    if (hadFocus && next) next.querySelector('button').focus();
  }

  // Moves rows into waiting order; touches only rows that are out of place.
  function reorder() {
    const wanted = [...rows.values()].sort(compare);
    let node = list.firstElementChild;
    for (const row of wanted) {
      if (node === row.li) {
        node = node.nextElementSibling;
      } else {
        list.insertBefore(row.li, node);
      }
    }
  }

  function select(id) {
    if (selected !== null) rows.get(selected)?.li.classList.remove('selected');
    rows.get(selected)?.button.removeAttribute('aria-current');
    selected = id;
    const row = rows.get(id);
    if (!row) return;
    row.li.classList.add('selected');
    row.button.setAttribute('aria-current', 'true');
  }

  function moveFocus(event) {
    if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp') return;
    const li = event.target.closest('li');
    const next = event.key === 'ArrowDown' ? li?.nextElementSibling : li?.previousElementSibling;
    if (!next) return;
    event.preventDefault();
    next.querySelector('button').focus();
  }

  return {
    element: list,
    upsert,
    remove,
    reorder,
    select,
    size: () => rows.size,
    refreshTimes: () => rows.forEach(paintWaiting),
  };
}

function compare(a, b) {
  const wa = a.entry.waitingSince;
  const wb = b.entry.waitingSince;
  if (wa && wb && wa !== wb) return wa - wb;
  if (wa && !wb) return -1;
  if (wb && !wa) return 1;
  const ta = a.entry.lastMessage?.ts ?? a.entry.opened ?? 0;
  const tb = b.entry.lastMessage?.ts ?? b.entry.opened ?? 0;
  return tb - ta || a.entry.id - b.entry.id;
}

function previewText(entry) {
  const last = entry.lastMessage;
  if (!last) return 'No messages yet';
  const text = [...last.text.replace(/\s+/g, ' ').trim()].slice(0, 140).join('');
  if (last.from === 'a') return 'You: ' + text;
  // An automatic message (thread.js isAutomatic) is not the consumer's words.
  if (last.from === 's' && typeof last.cid === 'string' && last.cid.startsWith('auto:')) return 'Automatic: ' + text;
  return text;
}

export function channelLabel(channel) {
  if (channel === 'in_app') return 'In-app';
  if (channel === 'web') return 'Web';
  return channel || '';
}
