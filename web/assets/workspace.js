// The agent's Inbox (#/inbox): conversation list, thread with composer, customer panel.
//
// State: one entry per open conversation assigned to the agent, from GET /api/v1/inbox
// (or the welcome's summaries when that endpoint is missing), kept current by the Live
// socket's events. `entry.seq` is the highest seq applied to the list, contiguous: a `msg`
// that skips a seq triggers a `sync` after entry.seq instead, and messages at or below it
// are duplicates. After a reconnect the welcome lists the open conversations: those that
// went missing left while we were away, the others are synced after their last seq. The
// thread of the selected conversation (thread.js) dedupes by seq and fills its own gaps.
// Own messages go out as `send` with a random cid; they show as pending until the ack,
// are resent with the same cid after a reconnect, and a refusal puts the text back.
// Submodules: inbox-list.js, thread.js, composer.js, consumer-panel.js, transfer-dialog.js,
// offers.js (conversations offered to the agent, to accept or decline).

import { get, post, query, ApiError } from './api.js';
import { h, clear, sentence, randomId, setText } from './dom.js';
import { icon } from './icons.js';
import { createConversationList, channelLabel } from './inbox-list.js';
import { createThread, closedText } from './thread.js';
import { createComposer } from './composer.js';
import { createConsumerPanel } from './consumer-panel.js';
import { transferDialog } from './transfer-dialog.js';
import { createOfferList } from './offers.js';

const DEFAULT_CHAR_LIMIT = 2000;
const WAIT_TICK_MS = 15000;
const TYPING_SHOW_MS = 8000;
const SYNC_LIMIT = 500;
const REFRESH_DEBOUNCE_MS = 250;

export function render(root, ctx) {
  const workspace = new Workspace(root, ctx);
  return () => workspace.destroy();
}

// What the empty inbox says, by the agent's own state: whether new conversations come to
// them now, and if not, what to do about it.
const EMPTY_INBOX = {
  online: ['No conversations right now', 'New conversations are assigned to you as they arrive.'],
  away: ['You are Away', 'New conversations go to agents who are Online. Switch to Online to receive them.'],
  back_soon: ['You are Back soon', 'New conversations go to agents who are Online. Switch to Online to receive them.'],
  offline: ['You are Offline', 'Switch to Online (top right) to receive conversations.'],
};

function displayName(consumer, conversationId) {
  if (consumer?.name) return consumer.name;
  return 'Visitor #' + (consumer?.id ?? conversationId);
}

// An entry from a GET /api/v1/inbox item.
function entryFromItem(item) {
  const c = item.conversation;
  return {
    id: c.id, conversation: c, consumer: item.consumer, displayName: displayName(item.consumer, c.id),
    channel: c.channel, skill: item.skill, charLimit: item.char_limit || DEFAULT_CHAR_LIMIT, opened: c.opened_at,
    seq: c.last_seq, lastMessage: item.last_message, unread: item.unread || 0, waitingSince: item.waiting_since,
    agentReadSeq: c.agent_read_seq || 0, consumerDlv: c.consumer_delivered_seq || 0, consumerRead: c.consumer_read_seq || 0,
    lastConsumerSeq: item.last_message?.from === 'c' ? item.last_message.seq : 0,
  };
}

// An entry from a conversation summary (welcome, conv assigned) until the inbox enriches it;
// a sync after seq last_seq - 1 fetches the last message for the preview.
function entryFromSummary(summary) {
  return {
    id: summary.c, conversation: null, consumer: summary.consumer || null, displayName: displayName(summary.consumer, summary.c),
    channel: null, skill: summary.skill || null, charLimit: DEFAULT_CHAR_LIMIT, opened: summary.opened,
    seq: Math.max(0, summary.last_seq - 1), lastMessage: null, unread: 0, waitingSince: null, agentReadSeq: 0, consumerDlv: 0, consumerRead: 0,
    lastConsumerSeq: 0,
  };
}

class Workspace {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.me = ctx.me;
    this.live = ctx.live;
    this.entries = new Map();
    this.outbox = new Map(); // cid → {c, text}: sent, not yet acknowledged
    this.syncing = new Map(); // conversation id → {again}
    this.drafts = new Map();
    this.loaded = false;
    this.buffer = [];
    this.selected = null; // {entry, thread, composer, header, typing, closed}
    this.roster = null;
    this.offs = [];
    this.build(root);
    this.subscribe();
    if (this.live.welcome) this.onWelcome(this.live.welcome);
    this.loadRoster({ quiet: true });
  }

  // ---- layout ------------------------------------------------------------------------

  build(root) {
    this.list = createConversationList({ onSelect: (id) => this.select(id) });
    this.offers = createOfferList({ live: this.live, notify: (text, kind) => this.ctx.notify(text, kind) });
    this.listEmptyTitle = h('p', { class: 'empty-title', id: 'inbox-empty-title' });
    this.listEmptyHint = h('p', { class: 'muted', id: 'inbox-empty-hint' });
    this.listEmpty = h('div', { class: 'list-empty' },
      h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, icon('inbox')), this.listEmptyTitle, this.listEmptyHint);
    this.paintEmptyInbox(this.me.state);
    // app.js announces each settled change of the agent's own state (from this window or
    // another: the welcome carries it after a reconnect).
    const onAgentState = (event) => this.paintEmptyInbox(event.detail);
    window.addEventListener('agent-state', onAgentState);
    this.offs.push(() => window.removeEventListener('agent-state', onAgentState));
    this.listCount = h('span', { class: 'count-pill' }, '0');
    this.center = h('section', { class: 'thread-pane', 'aria-label': 'Conversation' });
    this.panel = createConsumerPanel();
    root.appendChild(h('div', { class: 'workspace' },
      h('section', { class: 'inbox-pane', 'aria-label': 'Conversations' },
        h('div', { class: 'pane-head' }, h('h2', {}, 'My conversations'), this.listCount),
        this.offers.element,
        h('div', { class: 'list-scroll' }, this.list.element, this.listEmpty)),
      this.center,
      this.panel.element));
    this.showNoSelection();
    this.updateCount();
  }

  paintEmptyInbox(state) {
    const [title, hint] = EMPTY_INBOX[state] || EMPTY_INBOX.offline;
    setText(this.listEmptyTitle, title);
    setText(this.listEmptyHint, hint);
    this.agentState = state;
    if (this.center && !this.selected && this.entries.size === 0) this.showNoSelection();
  }

  showNoSelection() {
    const hasAny = this.entries.size > 0;
    const online = this.agentState === 'online';
    clear(this.center).appendChild(h('div', { class: 'empty-state' },
      h('div', { class: 'empty-icon', 'aria-hidden': 'true' }, icon('chat')),
      h('h2', {}, hasAny ? 'Pick a conversation' : online ? 'You\'re all caught up' : 'Nothing to answer'),
      h('p', { class: 'muted' }, hasAny
        ? 'Choose a customer on the left to read the history and reply.'
        : online ? 'New conversations are assigned to you as they arrive.' : 'New chats are routed to you while your status is Online.')));
    this.panel.showNone();
  }

  updateCount() {
    const n = this.entries.size;
    setText(this.listCount, n);
    this.listCount.setAttribute('aria-label', n + ' open');
    this.listEmpty.hidden = n > 0;
    if (!this.selected) this.showNoSelection();
  }

  // ---- live events -----------------------------------------------------------------------

  subscribe() {
    const on = (type, fn) => this.offs.push(this.live.on(type, (frame) => this.whenLoaded(() => fn.call(this, frame))));
    this.offs.push(this.live.on('welcome', (frame) => this.onWelcome(frame)));
    on('msg', this.ingest);
    on('rcpt', this.onReceipt);
    on('typing', this.onTyping);
    on('conv', this.onConv);
    on('resync', this.resyncAll);
    this.offs.push(this.live.on('connection', ({ state }) => this.onConnection(state)));
    const seen = () => this.markRead();
    window.addEventListener('focus', seen);
    document.addEventListener('visibilitychange', seen);
    this.offs.push(() => window.removeEventListener('focus', seen), () => document.removeEventListener('visibilitychange', seen));
    const tick = setInterval(() => this.list.refreshTimes(), WAIT_TICK_MS);
    this.offs.push(() => clearInterval(tick));
  }

  // Events that arrive before the inbox is loaded are applied after it.
  whenLoaded(fn) {
    if (this.loaded) fn();
    else this.buffer.push(fn);
  }

  async onWelcome(frame) {
    this.offers.clear();
    if (!this.loaded) {
      if (this.loading) {
        this.laterWelcome = frame; // a reconnect while the inbox loads: reconcile after it
        return;
      }
      this.loading = true;
      await this.loadInbox(frame.convs || []);
      this.loaded = true;
      const buffered = this.buffer;
      this.buffer = [];
      buffered.forEach((fn) => fn());
      if (this.laterWelcome) this.onWelcome(this.laterWelcome);
      return;
    }
    this.reconcile(frame.convs || []);
    this.resendOutbox();
  }

  async loadInbox(summaries) {
    let entries;
    try {
      const inbox = await get('/api/v1/inbox');
      entries = inbox.items.map(entryFromItem);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) this.ctx.notify('Could not load your inbox: ' + sentence(error.message), 'error');
      // Without the inbox endpoint: fetch each last message; treat what is there as read.
      entries = summaries.map((summary) => ({ ...entryFromSummary(summary), agentReadSeq: summary.last_seq }));
    }
    for (const entry of entries) this.addEntry(entry);
    this.list.reorder();
    this.updateCount();
    for (const entry of entries) if (!entry.lastMessage) this.syncConv(entry.id);
  }

  // Merges a fresh inbox into the entries (after assignments): enriches, adds, never removes.
  async refreshInbox() {
    clearTimeout(this.refreshTimer);
    try {
      const inbox = await get('/api/v1/inbox');
      for (const item of inbox.items) {
        const fresh = entryFromItem(item);
        const entry = this.entries.get(fresh.id);
        if (!entry) continue;
        this.merge(entry, fresh);
        this.list.upsert(entry);
        if (this.selected?.entry === entry) this.refreshSelectedInfo();
      }
      this.list.reorder();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) console.warn('inbox refresh failed', error);
    }
  }

  // Takes the counters of a fresh inbox item only when it describes the same seq as the
  // entry; when the store is ahead, the missing messages are synced (and counted) instead.
  merge(entry, fresh) {
    const { seq, lastMessage, unread, waitingSince, agentReadSeq, lastConsumerSeq, ...info } = fresh;
    Object.assign(entry, info);
    if (seq === entry.seq) {
      // A read receipt we sent may not be in the snapshot yet: our read mark wins.
      const readLocally = entry.agentReadSeq > agentReadSeq && entry.agentReadSeq >= lastConsumerSeq;
      Object.assign(entry, { lastMessage, waitingSince, lastConsumerSeq, unread: readLocally ? 0 : unread,
        agentReadSeq: Math.max(entry.agentReadSeq, agentReadSeq) });
    }
    else if (seq > entry.seq) this.syncConv(entry.id);
  }

  scheduleInboxRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refreshInbox(), REFRESH_DEBOUNCE_MS);
  }

  addEntry(entry) {
    this.entries.set(entry.id, entry);
    this.list.upsert(entry);
  }

  // After a reconnect: drop what left meanwhile, add what arrived, sync what moved on.
  reconcile(summaries) {
    const open = new Map(summaries.map((s) => [s.c, s]));
    for (const entry of [...this.entries.values()]) {
      if (!open.has(entry.id)) this.leave(entry.id, 'The conversation with ' + entry.displayName + ' was closed or moved while you were offline.', 'Closed or moved while you were offline');
    }
    for (const summary of summaries) {
      const entry = this.entries.get(summary.c);
      if (!entry) {
        this.addEntry(entryFromSummary(summary));
        this.syncConv(summary.c);
      } else if (summary.last_seq > entry.seq) {
        this.syncConv(entry.id);
      }
    }
    this.scheduleInboxRefresh();
    if (this.selected && this.entries.has(this.selected.entry.id)) this.selected.thread.catchUp();
    this.list.reorder();
    this.updateCount();
  }

  resyncAll() {
    for (const entry of this.entries.values()) this.syncConv(entry.id);
  }

  // Fetches the messages after entry.seq through the socket until none are missing.
  async syncConv(id) {
    const running = this.syncing.get(id);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.syncing.set(id, state);
    try {
      let more = true;
      while (more || state.again) {
        state.again = false;
        const entry = this.entries.get(id);
        if (!entry) break;
        const answer = await this.live.request({ t: 'sync', c: id, after: entry.seq, limit: SYNC_LIMIT });
        for (const message of answer.msgs || []) this.apply(message);
        more = answer.more && (answer.msgs || []).length > 0;
      }
    } catch (error) {
      if (error.code !== 'offline' && error.code !== 'disconnected') console.warn('sync failed', id, error);
    } finally {
      this.syncing.delete(id);
    }
  }

  // A live `msg`: applied when it is the next seq, else a sync fetches the gap.
  ingest(message) {
    const entry = this.entries.get(message.c);
    if (!entry || message.seq <= entry.seq) return;
    if (message.seq > entry.seq + 1 || this.syncing.has(entry.id)) {
      this.syncConv(entry.id);
      return;
    }
    this.apply(message);
  }

  // Applies the next message of a conversation to its entry, row and (if open) thread.
  apply(message) {
    const entry = this.entries.get(message.c);
    if (!entry || message.seq <= entry.seq) return;
    entry.seq = message.seq;
    entry.lastMessage = message;
    if (message.from === 'c') {
      entry.lastConsumerSeq = message.seq;
      if (!entry.waitingSince) entry.waitingSince = message.ts;
      if (message.seq > entry.agentReadSeq) entry.unread += 1;
    } else if (message.from === 'a') {
      entry.waitingSince = null;
    }
    this.list.upsert(entry);
    this.list.reorder();
    const open = this.selected?.entry === entry ? this.selected : null;
    if (open) {
      if (message.from === 'c') this.showTyping(false);
      open.thread.addMessage(message);
      this.markRead();
    }
  }

  onReceipt(frame) {
    const entry = this.entries.get(frame.c);
    if (!entry || frame.by === 'a') return;
    if (frame.k === 'read') entry.consumerRead = Math.max(entry.consumerRead, frame.seq);
    entry.consumerDlv = Math.max(entry.consumerDlv, frame.seq);
    if (this.selected?.entry === entry) this.selected.thread.setMarks(entry.consumerDlv, entry.consumerRead);
  }

  onTyping(frame) {
    if (frame.by === 'a' || this.selected?.entry.id !== frame.c) return;
    this.showTyping(frame.on);
  }

  onConv(frame) {
    if (frame.ev === 'offered') return this.offers.add(frame);
    if (frame.ev === 'withdrawn') return this.offers.remove(frame.c);
    if (frame.ev === 'assigned') this.offers.remove(frame.c);
    if (frame.ev === 'assigned' && frame.conv) return this.onAssigned(frame);
    const entry = this.entries.get(frame.c);
    if (!entry) return;
    if (frame.ev === 'closed') {
      const text = closedText(frame.by, frame.by === 'a' ? 'an agent' : null);
      this.leave(entry.id, 'The conversation with ' + entry.displayName + ' was ' + (frame.by === 'c' ? 'closed by the customer.' : 'closed.'), text);
    } else if (frame.ev === 'transferred') {
      const text = frame.agent ? 'Transferred to ' + frame.agent : 'Returned to the queue';
      this.leave(entry.id, entry.displayName + ': ' + (frame.agent ? 'transferred to ' + frame.agent : 'returned to the queue') + '.', text);
    }
  }

  onAssigned(frame) {
    const existing = this.entries.get(frame.c);
    if (existing) {
      if (this.selected?.entry === existing) this.selected.thread.notice('Assigned to ' + frame.agent);
      return;
    }
    const entry = entryFromSummary(frame.conv);
    this.addEntry(entry);
    this.syncConv(entry.id);
    this.scheduleInboxRefresh();
    this.updateCount();
    this.ctx.notify('New conversation from ' + entry.displayName);
  }

  // A conversation left this agent (closed, transferred): off the list, with a notice.
  leave(id, toastText, noticeText) {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.list.remove(id);
    this.updateCount();
    if (toastText) this.ctx.notify(toastText);
    if (this.selected?.entry === entry) this.endSelected(noticeText);
  }

  onConnection(state) {
    if (!this.selected) return;
    for (const [cid, item] of this.outbox) {
      if (state !== 'online' && item.c === this.selected.entry.id) this.selected.thread.setPendingWaiting(cid);
    }
  }

  // ---- selection -----------------------------------------------------------------------

  select(id) {
    const entry = this.entries.get(id);
    if (!entry || this.selected?.entry === entry) return;
    this.closeSelected();
    this.list.select(id);
    const header = this.buildHeader(entry);
    const typing = h('div', { id: 'typing-indicator', class: 'typing-indicator', 'aria-live': 'polite', hidden: true });
    const thread = createThread({ entry, me: this.me, nameOf: (agentId) => this.nameOf(agentId),
      onLoaded: (detail, messages) => this.onThreadLoaded(entry, detail, messages),
      onError: (error) => this.ctx.notify(sentence(error.message), 'error') });
    const composer = createComposer({ name: entry.displayName, limit: entry.charLimit,
      onSend: (text) => this.send(entry, text), onTyping: (on) => this.live.send({ t: 'typing', c: entry.id, on }) });
    composer.setText(this.drafts.get(id) || '');
    this.selected = { entry, thread, composer, header, typing, closed: false };
    clear(this.center).append(header.element, thread.element, typing, composer.element);
    for (const [cid, item] of this.outbox) if (item.c === id) thread.addPending(cid, item.text);
    this.panel.show(entry, null, (pastId) => thread.reveal(pastId));
    this.loadPast(entry);
    composer.focus();
  }

  closeSelected() {
    const open = this.selected;
    if (!open) return;
    if (!open.closed) this.drafts.set(open.entry.id, open.composer.text());
    open.composer.destroy();
    open.thread.destroy();
    clearTimeout(open.typingTimer);
    this.selected = null;
  }

  buildHeader(entry) {
    // Each action keeps its name in `title` and `aria-label`: on a narrow pane the CSS shows
    // the secondary actions as icons only (container queries on .thread-pane).
    const action = (id, kind, iconName, label, onclick) =>
      h('button', { id, class: 'button ' + kind, type: 'button', title: label, 'aria-label': label, onclick },
        icon(iconName), h('span', { class: 'button-label' }, label));
    const resolve = action('resolve-button', 'primary', 'check', 'Resolve', () => this.resolve(entry));
    const transfer = action('transfer-button', 'secondary', 'transfer', 'Transfer', () => this.transfer(entry));
    const requeue = action('requeue-button', 'secondary', 'queue', 'Back to queue', () => this.requeue(entry));
    const meta = h('p', { class: 'thread-meta' });
    const name = h('h2', { class: 'thread-name' }, entry.displayName);
    const element = h('header', { class: 'thread-header' },
      h('div', { class: 'thread-title' }, name, meta),
      h('div', { class: 'thread-actions', role: 'group', 'aria-label': 'Conversation actions' },
        exportMenu(entry.id), requeue, transfer, resolve));
    const header = { element, name, meta, buttons: [resolve, transfer, requeue] };
    this.paintHeader(header, entry);
    return header;
  }

  paintHeader(header, entry) {
    setText(header.name, entry.displayName);
    const meta = [channelLabel(entry.channel), entry.skill, entry.conversation ? 'Conversation #' + entry.id : null]
      .filter(Boolean).join(' · ');
    setText(header.meta, meta);
    // When a very long name must be cut with an ellipsis, the whole of it is one hover away.
    header.name.title = entry.displayName;
    header.meta.title = meta;
  }

  refreshSelectedInfo() {
    const open = this.selected;
    if (!open) return;
    this.paintHeader(open.header, open.entry);
    this.panel.show(open.entry, open.past ?? null, (pastId) => open.thread.reveal(pastId));
  }

  onThreadLoaded(entry, detail, messages) {
    entry.conversation = detail.conversation;
    if (detail.consumer) {
      entry.consumer = detail.consumer;
      entry.displayName = displayName(detail.consumer, entry.id);
    }
    entry.channel = detail.conversation.channel;
    entry.consumerDlv = Math.max(entry.consumerDlv, detail.conversation.consumer_delivered_seq || 0);
    entry.consumerRead = Math.max(entry.consumerRead, detail.conversation.consumer_read_seq || 0);
    for (const message of messages) if (message.from === 'c') entry.lastConsumerSeq = Math.max(entry.lastConsumerSeq, message.seq);
    this.list.upsert(entry);
    this.refreshSelectedInfo();
    this.markRead();
  }

  async loadPast(entry) {
    const consumerId = entry.consumer?.id ?? entry.conversation?.consumer_id;
    if (consumerId === undefined || consumerId === null) return;
    try {
      const page = await get('/api/v1/conversations' + query({ consumer_id: consumerId, limit: 100 }));
      if (this.selected?.entry !== entry) return;
      this.selected.past = page.conversations;
      this.selected.thread.setPast(page.conversations);
      this.refreshSelectedInfo();
    } catch (error) {
      console.warn('could not load previous conversations', error);
    }
  }

  // The selected conversation left: keep it readable, but no more replies or actions.
  endSelected(noticeText) {
    const open = this.selected;
    open.closed = true;
    if (noticeText) open.thread.notice(noticeText);
    this.showTyping(false);
    open.composer.disable('This conversation is no longer assigned to you.');
    for (const button of open.header.buttons) button.disabled = true;
    this.drafts.delete(open.entry.id);
  }

  showTyping(on) {
    const open = this.selected;
    if (!open) return;
    clearTimeout(open.typingTimer);
    open.typing.hidden = !on;
    // The whole display name: a first word alone would turn "Visitor #1" into "Visitor".
    setText(open.typing, on ? open.entry.displayName + ' is typing…' : '');
    if (on) open.typingTimer = setTimeout(() => this.showTyping(false), TYPING_SHOW_MS);
  }

  // Read receipt for the newest consumer message, when the agent can actually see it.
  markRead() {
    const open = this.selected;
    if (!open || open.closed || document.visibilityState !== 'visible' || !document.hasFocus()) return;
    const entry = open.entry;
    const seq = Math.max(entry.lastConsumerSeq, open.thread.newestConsumerSeq());
    if (seq <= entry.agentReadSeq) {
      if (entry.unread) this.clearUnread(entry);
      return;
    }
    entry.agentReadSeq = seq;
    this.clearUnread(entry);
    this.live.request({ t: 'rcpt', c: entry.id, seq, k: 'read' }).catch((error) => {
      if (error.code !== 'offline' && error.code !== 'disconnected') console.warn('read receipt refused', error);
    });
  }

  clearUnread(entry) {
    entry.unread = 0;
    this.list.upsert(entry);
  }

  // ---- sending and actions -------------------------------------------------------------

  send(entry, text) {
    const cid = randomId();
    this.outbox.set(cid, { c: entry.id, text });
    this.drafts.delete(entry.id);
    this.selected?.thread.addPending(cid, text);
    this.deliver(cid);
  }

  async deliver(cid) {
    const item = this.outbox.get(cid);
    if (!item) return;
    try {
      const ack = await this.live.request({ t: 'send', c: item.c, cid, text: item.text });
      this.outbox.delete(cid);
      const message = { c: ack.c, seq: ack.seq, ts: ack.ts, from: 'a', name: this.me.name, text: item.text, cid };
      if (this.selected?.entry.id === item.c) this.selected.thread.settle(cid, message);
      if (ack.c === item.c) this.ingest(message);
      else this.scheduleInboxRefresh();
    } catch (error) {
      if (error.code === 'offline' || error.code === 'disconnected' || error.code === 'timeout') {
        if (this.selected?.entry.id === item.c) this.selected.thread.setPendingWaiting(cid);
        return; // resent with the same cid after the reconnect
      }
      this.outbox.delete(cid);
      if (this.selected?.entry.id === item.c) {
        this.selected.thread.dropPending(cid);
        this.selected.composer.restore(item.text, sentence(error.message));
      } else {
        this.ctx.notify('Your message was not sent: ' + sentence(error.message), 'error');
      }
    }
  }

  resendOutbox() {
    for (const cid of this.outbox.keys()) this.deliver(cid);
  }

  async resolve(entry) {
    try {
      await this.live.request({ t: 'close', c: entry.id });
      this.leave(entry.id, 'You resolved the conversation with ' + entry.displayName + '.', 'Resolved by ' + this.me.name);
    } catch (error) {
      this.ctx.notify('Could not resolve: ' + sentence(error.message), 'error');
    }
  }

  async transfer(entry) {
    const roster = await this.loadRoster();
    if (!roster) return;
    await transferDialog({ roster, me: this.me, customer: entry.displayName,
      submit: (body, label) => this.moveAway(entry, body, 'Transferred to ' + label) });
  }

  async requeue(entry) {
    try {
      await this.moveAway(entry, {}, 'Returned to the queue');
    } catch (error) {
      this.ctx.notify('Could not return the conversation to the queue: ' + sentence(error.message), 'error');
    }
  }

  // POST …/transfer; the conversation then leaves this agent (errors go to the caller).
  async moveAway(entry, body, text) {
    await post('/api/v1/conversations/' + entry.id + '/transfer', body);
    this.leave(entry.id, entry.displayName + ': ' + text.charAt(0).toLowerCase() + text.slice(1) + '.', text);
  }

  // The agents and skills (transfer targets; agent names for notices).
  async loadRoster({ quiet = false } = {}) {
    try {
      this.roster = await get('/api/v1/roster');
      return this.roster;
    } catch (error) {
      if (!quiet) this.ctx.notify('Transfer is not available: ' + sentence(error.message), 'error');
      return null;
    }
  }

  nameOf(agentId) {
    if (agentId === this.me.id) return this.me.name;
    return this.roster?.agents?.find((a) => a.id === agentId)?.name || 'agent #' + agentId;
  }

  destroy() {
    this.offers.destroy();
    this.closeSelected();
    clearTimeout(this.refreshTimer);
    for (const off of this.offs) off();
  }
}

// "Export" on a conversation: its transcript as TXT, XML or JSON (GET
// /api/v1/conversations/{id}/transcript, sent as a download with the session cookie). A native
// <details> disclosure: no script needed to open or close it.
function exportMenu(conversationId) {
  const link = (format, label) => h('a', {
    class: 'menu-item', id: `export-${format}`, role: 'menuitem',
    href: `/api/v1/conversations/${encodeURIComponent(conversationId)}/transcript?format=${format}`,
    download: `conversation-${conversationId}.${format}`,
  }, label);
  return h('details', { class: 'export-menu', id: 'export-menu' },
    h('summary', { class: 'button secondary', title: 'Export the transcript', 'aria-label': 'Export the transcript' },
      icon('download'), h('span', { class: 'button-label' }, 'Export')),
    h('div', { class: 'menu', role: 'menu' },
      link('txt', 'Text (.txt)'), link('xml', 'XML (.xml)'), link('json', 'JSON (.json)')));
}
