// Live: the one shared /v1/agent WebSocket of the workspace (docs/protocol.md).
//
// It authenticates with the sb_session cookie (hello {"t":"hello","v":1}), gives requests
// ids and resolves their answers as promises, pings every `hb` seconds and reconnects with
// exponential backoff and jitter (at most ~15 s) when the socket closes or nothing was heard
// for 2 × hb. After every (re)connect it emits 'welcome' so that pages resync: the
// workspace then syncs each open conversation after the last seq it holds.
// Close 4001/4003, or a hello refused with session_expired/unauthenticated, means the
// session is gone: 'session-lost' is emitted and no reconnect is attempted.
//
// Events for live.on(type, fn): server frame types ('welcome', 'msg', 'conv', 'typing',
// 'rcpt', 'resync', 'err' for errors without id), 'connection' ({state: 'connecting' |
// 'online' | 'offline', everConnected}) and 'session-lost' ({code, message}).

const MAX_BACKOFF_MS = 15000;
const FIRST_BACKOFF_MS = 500;
const HELLO_TIMEOUT_MS = 10000;
const REQUEST_TIMEOUT_MS = 20000;
const DEFAULT_HB_SECS = 30;
const SESSION_CLOSE_CODES = new Set([4001, 4003]);
const SESSION_ERROR_CODES = new Set(['session_expired', 'unauthenticated', 'token_expired']);
// Answers to requests: they carry the request id.
const ANSWER_TYPES = new Set(['ack', 'msgs', 'ok', 'pong', 'err', 'history']);

// A refused request: `code` from docs/errors.md (or 'offline', 'disconnected', 'timeout').
export class LiveError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Live {
  constructor(url = defaultUrl()) {
    this.url = url;
    this.state = 'offline';
    this.me = null;
    this.welcome = null; // the last welcome frame, for pages rendered after it arrived
    this.everConnected = false;
    this.listeners = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.stopped = true;
    this.socket = null;
    this.timers = {};
    this.onBrowserOnline = () => this.retryNow();
  }

  // Subscribes to an event type; returns the unsubscribe function.
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  emit(type, payload) {
    for (const fn of [...(this.listeners.get(type) || [])]) {
      try {
        fn(payload);
      } catch (error) {
        console.error('live listener for', type, 'failed', error);
      }
    }
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onBrowserOnline);
    this.connect();
  }

  // Closes for good (logout, session lost): no reconnect, pending requests fail.
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onBrowserOnline);
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, 'bye');
    this.failPending('disconnected', 'The connection was closed.');
    this.setState('offline');
  }

  // Sends a request with a fresh id; resolves with the answer frame, rejects with LiveError.
  request(frame) {
    if (this.state !== 'online') {
      return Promise.reject(new LiveError('offline', 'Not connected to the server — try again when the connection is back.'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new LiveError('timeout', 'The server did not answer in time.'));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.write({ ...frame, id });
    });
  }

  // Fire-and-forget frame (typing); false when not connected.
  send(frame) {
    if (this.state !== 'online') return false;
    return this.write(frame);
  }

  write(frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    this.clearTimers();
    this.setState('connecting');
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (error) {
      console.error('cannot open the agent socket', error);
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.helloError = null;
    socket.onopen = () => socket.send(JSON.stringify({ t: 'hello', v: 1 }));
    socket.onmessage = (event) => this.receive(socket, event.data);
    socket.onclose = (event) => this.closed(socket, event.code);
    this.timers.hello = setTimeout(() => this.dropSocket(socket), HELLO_TIMEOUT_MS);
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (_) {
      console.warn('ignoring a frame that is not JSON');
      return;
    }
    this.armWatchdog();
    if (frame.t === 'welcome') return this.welcomed(frame);
    if (frame.id !== undefined && ANSWER_TYPES.has(frame.t)) return this.answer(frame);
    if (frame.t === 'err' && this.state !== 'online') {
      this.helloError = frame;
      return;
    }
    this.emit(frame.t, frame);
  }

  welcomed(frame) {
    clearTimeout(this.timers.hello);
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    this.me = frame.me || null;
    this.welcome = frame;
    this.hb = frame.hb > 0 ? frame.hb : DEFAULT_HB_SECS;
    this.setState('online');
    this.startHeartbeat();
    this.emit('welcome', { ...frame, reconnect });
  }

  answer(frame) {
    const entry = this.pending.get(frame.id);
    if (!entry) return;
    this.pending.delete(frame.id);
    clearTimeout(entry.timer);
    if (frame.t === 'err') entry.reject(new LiveError(frame.code, frame.msg || frame.code));
    else entry.resolve(frame);
  }

  closed(socket, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.clearTimers();
    this.failPending('disconnected', 'The connection was lost before the server answered.');
    const helloCode = this.helloError?.code;
    if (SESSION_CLOSE_CODES.has(code) || SESSION_ERROR_CODES.has(helloCode)) {
      this.stopped = true;
      this.setState('offline');
      this.emit('session-lost', { code: helloCode || 'session_expired', message: this.helloError?.msg });
      return;
    }
    if (this.stopped) return;
    this.scheduleReconnect();
  }

  // Gives up on a socket that went silent; onclose may take long to fire, so reconnect now.
  dropSocket(socket) {
    if (socket !== this.socket) return;
    socket.onclose = null;
    socket.onmessage = null;
    try {
      socket.close(4008, 'heartbeat timeout');
    } catch (_) {
      /* already closing */
    }
    this.closed(socket, 4008);
  }

  scheduleReconnect() {
    this.setState('offline');
    const base = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }

  // The browser came back online: skip the remaining backoff.
  retryNow() {
    if (this.stopped || this.state !== 'offline') return;
    this.attempt = 0;
    this.connect();
  }

  startHeartbeat() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => this.write({ t: 'ping' }), this.hb * 1000);
    this.armWatchdog();
  }

  // No frame for 2 × hb (our pings are answered, so silence means a dead link): reconnect.
  armWatchdog() {
    clearTimeout(this.timers.watchdog);
    if (this.state !== 'online') return;
    const socket = this.socket;
    this.timers.watchdog = setTimeout(() => this.dropSocket(socket), 2 * this.hb * 1000);
  }

  failPending(code, message) {
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new LiveError(code, message));
    }
    this.pending.clear();
  }

  clearTimers() {
    clearTimeout(this.timers.hello);
    clearTimeout(this.timers.reconnect);
    clearTimeout(this.timers.watchdog);
    clearInterval(this.timers.ping);
    this.timers = {};
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('connection', { state, everConnected: this.everConnected });
  }
}

function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return scheme + '//' + location.host + '/v1/agent';
}
