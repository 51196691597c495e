// The message thread of the selected conversation (#messages), used by workspace.js.
//
// It shows the current conversation's newest page (GET /api/v1/conversations/{id}?before=…
// &limit=100), loads older pages when the top is scrolled into view, and on demand the
// consumer's earlier conversations, each in its own <section>. Messages are keyed by seq
// (a message seen twice is shown once), kept in seq order, with day separators and system
// notices (.notice) derived from the conversation (opened, assigned, resolved) or pushed by
// the workspace (transferred…). Own messages carry a .mark (Sent / Delivered / Read) and may
// be pending (no seq yet) until their ack. System messages whose client id starts with
// `auto:` are the brand's automatic messages and show as labelled cards (.automatic). Text
// is always set with textContent.

import { get, query } from './api.js';
import { h, clear, clock, dayLabel, date, startOfDay, setText } from './dom.js';
import { icon } from './icons.js';

const PAGE = 100;
const NEAR_BOTTOM_PX = 120;

// Text of the notice for how a conversation ended.
export function closedText(closedBy, agentName) {
  if (closedBy === 'c') return 'Closed by the customer';
  if (closedBy === 's') return 'Closed automatically';
  return 'Resolved by ' + (agentName || 'an agent');
}

// An automatic message: a system message the automation stored under an `auto:` key.
export function isAutomatic(message) {
  return message.from === 's' && typeof message.cid === 'string' && message.cid.startsWith('auto:');
}

export function statusText(conversation) {
  if (conversation.status === 'open') return 'Open';
  if (conversation.closed_by === 'c') return 'Closed by customer';
  if (conversation.closed_by === 's') return 'Auto-closed';
  return 'Resolved';
}

// Fetches the messages with seq < before (ascending) → {detail, messages, more}. Servers
// that do not know `before` answer from the start; then it falls back to `after`.
async function fetchBefore(id, before) {
  const path = '/api/v1/conversations/' + id;
  const detail = await get(path + query({ before, limit: PAGE }));
  const messages = detail.messages || [];
  const ignored = messages.some((m) => m.seq >= before) || (detail.more && messages.length && messages[messages.length - 1].seq < before - 1);
  if (!ignored) return { detail, messages, more: detail.more };
  const after = Math.max(0, before - 1 - PAGE);
  const page = await get(path + query({ after, limit: before - 1 - after }));
  return { detail: page, messages: page.messages || [], more: after > 0 };
}

export function createThread({ entry, me, nameOf, onLoaded, onError }) {
  const scroller = h('div', { id: 'messages', class: 'messages', role: 'log', tabindex: '0',
    'aria-label': 'Messages with ' + entry.displayName });
  const jump = h('button', { type: 'button', class: 'jump-button', hidden: true, onclick: () => scrollToBottom() },
    icon('down'), 'New messages');
  const element = h('div', { class: 'thread' }, scroller, jump);
  const pastBar = h('div', { class: 'past-bar' });
  scroller.appendChild(pastBar);

  const current = createSection(entry.id, null, true);
  scroller.appendChild(current.element);
  const sections = [current];
  const pending = new Map(); // cid → node of an own message waiting for its ack
  let past = [];
  let marks = { dlv: entry.consumerDlv || 0, read: entry.consumerRead || 0 };
  let destroyed = false;
  let gapLoading = false;

  const observer = new IntersectionObserver(onTopVisible, { root: scroller, rootMargin: '200px 0px 0px 0px' });
  scroller.addEventListener('scroll', () => {
    if (nearBottom()) jump.hidden = true;
  });

  // ---- sections ----------------------------------------------------------------------

  function createSection(id, conversation, isCurrent) {
    const older = h('button', { type: 'button', class: 'load-older', hidden: true }, 'Load earlier messages');
    const body = h('div', { class: 'section-body' });
    const element = h('section', { class: 'conv-section' + (isCurrent ? ' current' : ' past'), dataset: { conversation: id } },
      older, body);
    const section = { id, conversation, isCurrent, element, body, older, bySeq: new Map(), firstSeq: null, lastSeq: 0,
      lastDay: null, hasOlder: false, loading: false, notices: [] };
    older.addEventListener('click', () => loadOlder(section));
    return section;
  }

  // Notices derived from the conversation record, placed by time among the messages.
  function derivedNotices(conversation) {
    const list = [{ ts: conversation.opened_at, order: -1, text: 'Conversation opened' }];
    if (conversation.assigned_at && conversation.agent_id) {
      list.push({ ts: conversation.assigned_at, order: 1, text: 'Assigned to ' + nameOf(conversation.agent_id) });
    }
    if (conversation.closed_at) {
      list.push({ ts: conversation.closed_at, order: 1, text: closedText(conversation.closed_by, nameOf(conversation.agent_id)) });
    }
    return list;
  }

  async function loadNewest(section) {
    const conversation = section.conversation;
    const before = (conversation ? conversation.last_seq : entry.seq) + 1;
    section.loading = true;
    try {
      const { detail, messages, more } = await fetchBefore(section.id, before);
      if (destroyed) return;
      section.conversation = detail.conversation;
      section.notices = derivedNotices(detail.conversation);
      if (section.isCurrent) {
        marks = { dlv: Math.max(marks.dlv, detail.conversation.consumer_delivered_seq || 0),
          read: Math.max(marks.read, detail.conversation.consumer_read_seq || 0) };
      }
      renderPage(section, messages, more, false);
      if (section.isCurrent) {
        scrollToBottom();
        onLoaded(detail, messages);
        catchUp();
      }
    } catch (error) {
      if (!destroyed) showError(section, error);
    } finally {
      section.loading = false;
    }
  }

  async function loadOlder(section) {
    if (section.loading || !section.hasOlder) return;
    section.loading = true;
    section.older.textContent = 'Loading…';
    try {
      const { messages, more } = await fetchBefore(section.id, section.firstSeq);
      if (destroyed) return;
      keepScroll(() => renderPage(section, messages, more, true));
    } catch (error) {
      onError(error);
    } finally {
      section.loading = false;
      section.older.textContent = 'Load earlier messages';
    }
  }

  function showError(section, error) {
    section.body.appendChild(h('p', { class: 'notice error' }, 'Could not load the messages: ' + error.message));
  }

  // Renders one page: the newest (prepend false) or an older one (prepend true).
  function renderPage(section, messages, more, prepend) {
    const firstTs = messages.length ? messages[0].ts : Infinity;
    // "Conversation opened" (order -1) belongs before seq 1: only on the page that reaches it.
    const take = section.notices.filter((n) => !more || (n.order !== -1 && n.ts >= firstTs));
    section.notices = section.notices.filter((n) => !take.includes(n));
    const items = merge(messages.filter((m) => !section.bySeq.has(m.seq)), take);
    section.hasOlder = more;
    section.older.hidden = !more;
    if (prepend) prependItems(section, items);
    else for (const item of items) appendItem(section, item);
    if (messages.length) section.firstSeq = Math.min(section.firstSeq ?? Infinity, messages[0].seq);
    if (more) observer.observe(section.older);
    else observer.unobserve(section.older);
  }

  // Messages and notices in time order; ties put "opened" first and other notices after messages.
  function merge(messages, notices) {
    const items = messages.map((m) => ({ ts: m.ts, order: 0, message: m }));
    for (const n of notices) items.push({ ts: n.ts, order: n.order, notice: n.text });
    return items.sort((a, b) => a.ts - b.ts || a.order - b.order);
  }

  function appendItem(section, item) {
    const node = itemNode(section, item);
    const day = startOfDay(item.ts);
    const anchor = firstPendingIn(section);
    if (day !== section.lastDay) {
      section.body.insertBefore(separator(day), anchor);
      section.lastDay = day;
    }
    section.body.insertBefore(node, anchor);
  }

  function prependItems(section, items) {
    if (!items.length) return;
    const fragment = document.createDocumentFragment();
    let day = null;
    for (const item of items) {
      const itemDay = startOfDay(item.ts);
      if (itemDay !== day) fragment.appendChild(separator(itemDay));
      day = itemDay;
      fragment.appendChild(itemNode(section, item));
    }
    const first = section.body.firstChild;
    if (first && first.classList.contains('day-separator') && Number(first.dataset.day) === day) first.remove();
    section.body.insertBefore(fragment, section.body.firstChild);
    if (section.lastDay === null) section.lastDay = day;
  }

  function separator(day) {
    return h('div', { class: 'day-separator', role: 'separator', dataset: { day } }, h('span', {}, dayLabel(day)));
  }

  function itemNode(section, item) {
    if (item.notice) return noticeNode(item.notice, item.ts);
    const node = messageNode(item.message, section);
    section.bySeq.set(item.message.seq, node);
    section.lastSeq = Math.max(section.lastSeq, item.message.seq);
    return node;
  }

  function noticeNode(text, ts) {
    return h('div', { class: 'notice', role: 'note' }, h('span', {}, text), ts ? h('time', { class: 'notice-time' }, clock(ts)) : null);
  }

  function messageNode(message, section) {
    const own = message.from === 'a';
    const text = h('p', { class: 'message-text' }, message.text);
    if (message.from === 's' && isAutomatic(message)) {
      // Sent to the consumer by the brand's automation (Admin → Automatic messages), not by
      // an agent: labelled so, in a card of its own rather than an agent's bubble.
      return h('div', { class: 'message from-s automatic', dataset: { seq: message.seq }, role: 'note', 'aria-label': 'Automatic message' },
        h('div', { class: 'automatic-head' }, icon('bolt', 'icon automatic-icon'), h('span', { class: 'automatic-label' }, 'Automatic message'),
          h('time', { class: 'message-time', datetime: new Date(message.ts).toISOString(), title: date(message.ts) }, clock(message.ts))),
        text);
    }
    if (message.from === 's') {
      return h('div', { class: 'message from-s', dataset: { seq: message.seq } }, text,
        h('time', { class: 'message-time', datetime: new Date(message.ts).toISOString() }, clock(message.ts)));
    }
    const author = own ? (message.name && message.name !== me.name ? message.name : 'You') : entry.displayName;
    const meta = h('div', { class: 'message-meta' },
      h('span', { class: 'author' }, author),
      h('time', { class: 'message-time', datetime: new Date(message.ts).toISOString(), title: date(message.ts) }, clock(message.ts)),
      own ? h('span', { class: 'mark' }, markText(message.seq, section)) : null);
    return h('div', { class: 'message ' + (own ? 'from-a' : 'from-c'), dataset: { seq: message.seq } },
      h('div', { class: 'bubble' }, text), meta);
  }

  function markText(seq, section) {
    const read = section.isCurrent ? marks.read : section.conversation?.consumer_read_seq || 0;
    const dlv = section.isCurrent ? marks.dlv : section.conversation?.consumer_delivered_seq || 0;
    if (seq <= read) return 'Read';
    return seq <= dlv ? 'Delivered' : 'Sent';
  }

  function firstPendingIn(section) {
    if (!section.isCurrent) return null;
    for (const node of pending.values()) if (node.parentNode === section.body) return node;
    return null;
  }

  // ---- live updates of the current conversation ---------------------------------------

  // A message of the current conversation (live, synced or acked); duplicates are ignored.
  function addMessage(message) {
    if (current.bySeq.has(message.seq) || current.loading && current.lastSeq === 0) return;
    const waiting = message.cid ? pending.get(message.cid) : null;
    if (waiting) return settle(message.cid, message);
    if (message.seq > current.lastSeq + 1 && current.lastSeq > 0) return fillGap();
    const stick = nearBottom();
    if (message.seq < current.lastSeq) insertLate(message);
    else appendItem(current, { ts: message.ts, message });
    afterAppend(stick, message.from === 'a');
  }

  // Late arrival below the newest seq: put it before the next higher seq.
  function insertLate(message) {
    const node = messageNode(message, current);
    const next = [...current.bySeq.keys()].filter((s) => s > message.seq).sort((a, b) => a - b)[0];
    current.bySeq.set(message.seq, node);
    current.body.insertBefore(node, next !== undefined ? current.bySeq.get(next) : firstPendingIn(current));
  }

  // A gap in seq: fetch what is missing from the store (REST) after the last seq held.
  async function fillGap() {
    if (gapLoading) return;
    gapLoading = true;
    try {
      // Until the thread holds everything the workspace has seen (messages that arrive
      // meanwhile with a gap are dropped by addMessage and fetched by the next round).
      let more = true;
      while (!destroyed && (more || entry.seq > current.lastSeq)) {
        const page = await get('/api/v1/conversations/' + entry.id + query({ after: current.lastSeq, limit: 500 }));
        for (const message of page.messages) addMessage(message);
        if (!page.messages.length) break;
        more = page.more;
      }
    } catch (error) {
      onError(error);
    } finally {
      gapLoading = false;
    }
  }

  // After the first page: messages that arrived while it loaded are fetched too.
  function catchUp() {
    if (entry.seq > current.lastSeq) fillGap();
  }

  function addPending(cid, text) {
    const node = h('div', { class: 'message from-a pending', dataset: { cid } },
      h('div', { class: 'bubble' }, h('p', { class: 'message-text' }, text)),
      h('div', { class: 'message-meta' }, h('span', { class: 'author' }, 'You'), h('span', { class: 'mark' }, 'Sending…')));
    current.body.appendChild(node);
    pending.set(cid, node);
    scrollToBottom();
  }

  function setPendingWaiting(cid) {
    const node = pending.get(cid);
    if (node) setText(node.querySelector('.mark'), 'Waiting for connection…');
  }

  // The ack (or the synced copy) of a pending message: it becomes a normal message.
  function settle(cid, message) {
    const node = pending.get(cid);
    pending.delete(cid);
    if (!node) return addMessage(message);
    node.remove();
    if (current.bySeq.has(message.seq)) return;
    const stick = nearBottom();
    appendItem(current, { ts: message.ts, message });
    afterAppend(stick, true);
  }

  function dropPending(cid) {
    pending.get(cid)?.remove();
    pending.delete(cid);
  }

  function setMarks(dlv, read) {
    marks = { dlv: Math.max(marks.dlv, dlv || 0), read: Math.max(marks.read, read || 0) };
    for (const [seq, node] of current.bySeq) {
      const mark = node.querySelector('.mark');
      if (mark) setText(mark, markText(seq, current));
    }
  }

  function notice(text) {
    const stick = nearBottom();
    current.body.insertBefore(noticeNode(text, Date.now()), firstPendingIn(current));
    afterAppend(stick, false);
  }

  // ---- earlier conversations ------------------------------------------------------------

  // The consumer's other conversations (newest first), for "Load earlier conversations".
  function setPast(conversations) {
    past = conversations.filter((c) => c.id !== entry.id && c.opened_at <= (current.conversation?.opened_at ?? Infinity));
    renderPastBar();
  }

  function renderPastBar() {
    clear(pastBar);
    const remaining = past.filter((c) => !sections.some((s) => s.id === c.id));
    if (!remaining.length) {
      if (sections.length > 1) pastBar.appendChild(h('p', { class: 'history-start' }, 'Start of the customer\'s history'));
      return;
    }
    pastBar.appendChild(h('button', { type: 'button', class: 'load-earlier-conversations', onclick: () => loadPastConversation() },
      'Load earlier conversations (' + remaining.length + ')'));
  }

  async function loadPastConversation(untilId) {
    const next = past.find((c) => !sections.some((s) => s.id === c.id));
    if (!next) return;
    const section = createSection(next.id, next, false);
    section.element.insertBefore(pastHeader(next), section.older);
    if (!current.element.querySelector('.current-header')) {
      current.element.insertBefore(h('div', { class: 'conv-header current-header' }, h('span', {}, 'Current conversation')), current.older);
    }
    keepScroll(() => {
      pastBar.after(section.element);
      sections.splice(1, 0, section);
      renderPastBar();
    });
    await keepScrollAsync(() => loadNewest(section));
    if (untilId !== undefined && next.id !== untilId) return loadPastConversation(untilId);
    if (untilId !== undefined) section.element.scrollIntoView({ block: 'start' });
  }

  function pastHeader(conversation) {
    return h('div', { class: 'conv-header' },
      h('span', {}, 'Conversation from ' + date(conversation.opened_at)),
      h('span', { class: 'status-pill ' + conversation.status }, statusText(conversation)),
      conversation.csat_score ? h('span', { class: 'csat' }, '★ ' + conversation.csat_score + '/5') : null);
  }

  // Shows a past conversation (from the consumer panel), loading the ones in between.
  function reveal(id) {
    const loaded = sections.find((s) => s.id === id);
    if (loaded) loaded.element.scrollIntoView({ block: 'start', behavior: 'smooth' });
    else loadPastConversation(id);
  }

  // ---- scrolling ----------------------------------------------------------------------

  function onTopVisible(entries) {
    for (const item of entries) {
      if (!item.isIntersecting) continue;
      const section = sections.find((s) => s.older === item.target);
      if (section && !section.loading && scroller.scrollTop < scroller.scrollHeight - scroller.clientHeight) loadOlder(section);
    }
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    jump.hidden = true;
  }

  function afterAppend(wasNearBottom, own) {
    if (wasNearBottom || own) scrollToBottom();
    else jump.hidden = false;
  }

  // Runs a DOM change above the viewport without moving what the agent is looking at.
  function keepScroll(change) {
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    change();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }

  async function keepScrollAsync(load) {
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    await load();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }

  loadNewest(current);

  return {
    element,
    addMessage,
    addPending,
    setPendingWaiting,
    settle,
    dropPending,
    setMarks,
    notice,
    setPast,
    reveal,
    catchUp,
    lastSeq: () => current.lastSeq,
    newestConsumerSeq: () => {
      let best = 0;
      for (const [seq, node] of current.bySeq) if (seq > best && node.classList.contains('from-c')) best = seq;
      return best;
    },
    destroy() {
      destroyed = true;
      observer.disconnect();
    },
  };
}
