// The reply composer of the workspace: a labelled <textarea id="composer">, the live
// character count (#char-count "n / limit", counted in Unicode code points like the server),
// inline errors (#composer-error) and #send-button. Enter sends, Shift+Enter adds a line.
// Above the limit the count turns red and sending is disabled. It also reports typing:
// on when the agent starts (repeated every few seconds while typing goes on), off after
// 3 s without a keystroke, when the text is emptied, or when the message is sent.

import { h, setText } from './dom.js';
import { icon } from './icons.js';

const TYPING_IDLE_MS = 3000;
const TYPING_REPEAT_MS = 5000;
const MAX_HEIGHT_PX = 200;

export function createComposer({ name, limit, onSend, onTyping }) {
  const textarea = h('textarea', { id: 'composer', rows: '2', placeholder: 'Write a reply…',
    'aria-describedby': 'char-count composer-hint composer-error' });
  const count = h('span', { id: 'char-count', class: 'char-count', 'aria-live': 'polite' });
  const error = h('p', { id: 'composer-error', class: 'composer-error', role: 'alert', hidden: true });
  const send = h('button', { id: 'send-button', class: 'button primary', type: 'submit' }, icon('send'), 'Send');
  const form = h('form', { class: 'composer' },
    h('label', { for: 'composer', class: 'visually-hidden' }, 'Reply to ' + name),
    textarea,
    error,
    h('div', { class: 'composer-bar' },
      h('span', { id: 'composer-hint', class: 'composer-hint' }, 'Enter to send · Shift+Enter for a new line'),
      count, send));
  let typingOn = false;
  let lastTypingAt = 0;
  let idleTimer = null;
  let disabled = false;

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  textarea.addEventListener('input', () => {
    hideError();
    refresh();
    typing(textarea.value.trim() !== '');
  });

  function length() {
    return [...textarea.value].length;
  }

  function refresh() {
    const n = length();
    const over = n > limit;
    setText(count, n + ' / ' + limit);
    count.classList.toggle('over', over);
    textarea.classList.toggle('over', over);
    textarea.setAttribute('aria-invalid', over ? 'true' : 'false');
    send.disabled = disabled || over || textarea.value.trim() === '';
    autosize();
  }

  function autosize() {
    textarea.style.height = 'auto';
    textarea.style.height = Math.min(textarea.scrollHeight + 2, MAX_HEIGHT_PX) + 'px';
  }

  function submit() {
    const text = textarea.value;
    if (disabled || text.trim() === '' || length() > limit) return;
    typing(false);
    hideError();
    textarea.value = '';
    refresh();
    onSend(text);
  }

  function typing(on) {
    clearTimeout(idleTimer);
    if (on) {
      const now = Date.now();
      if (!typingOn || now - lastTypingAt > TYPING_REPEAT_MS) {
        onTyping(true);
        lastTypingAt = now;
      }
      typingOn = true;
      idleTimer = setTimeout(() => typing(false), TYPING_IDLE_MS);
    } else if (typingOn) {
      typingOn = false;
      onTyping(false);
    }
  }

  function hideError() {
    error.hidden = true;
    error.textContent = '';
  }

  refresh();

  return {
    element: form,
    focus: () => textarea.focus(),
    text: () => textarea.value,
    // Puts a refused message back (if the agent has not started another) and says why.
    restore(text, message) {
      if (textarea.value.trim() === '') textarea.value = text;
      error.textContent = message;
      error.hidden = false;
      refresh();
    },
    setText(text) {
      textarea.value = text;
      refresh();
    },
    disable(reason) {
      disabled = true;
      typing(false);
      textarea.disabled = true;
      textarea.placeholder = reason;
      refresh();
    },
    destroy() {
      typing(false);
    },
  };
}
