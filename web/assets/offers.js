// Offered conversations (#offer-list), used by workspace.js: skills in offer mode ring one
// agent at a time. Each offer is a card with the customer's name, the skill, a countdown to
// the offer's end and Accept / Decline buttons. Cards leave when answered, withdrawn by the
// server (`withdrawn`: expired, taken away, or the conversation closed or moved), or when
// their time is up. Accepting answers `ok` and the server then sends `assigned`, which puts
// the conversation in the inbox as usual.

import { h, setText, sentence } from './dom.js';

export function createOfferList({ live, notify }) {
  const list = h('ul', { id: 'offer-list', class: 'offer-list', 'aria-label': 'Conversations offered to you', 'aria-live': 'polite' });
  const cards = new Map(); // conversation id → {li, countdown, until}
  const timer = setInterval(tick, 1000);
  list.hidden = true;

  function nameOf(summary, id) {
    return summary?.consumer?.name || 'Visitor #' + (summary?.consumer?.id ?? id);
  }

  function add(frame) {
    remove(frame.c);
    const name = nameOf(frame.conv, frame.c);
    const countdown = h('span', { class: 'offer-countdown' });
    const accept = h('button', { type: 'button', class: 'button primary', id: 'accept-offer-' + frame.c }, 'Accept');
    const decline = h('button', { type: 'button', class: 'button', id: 'decline-offer-' + frame.c }, 'Decline');
    const li = h('li', { class: 'offer-card', dataset: { conversation: frame.c } },
      h('div', { class: 'offer-text' },
        h('span', { class: 'offer-name' }, name),
        h('span', { class: 'offer-meta' }, [frame.conv?.skill, 'waiting for you'].filter(Boolean).join(' · ')),
        countdown),
      h('div', { class: 'offer-actions', role: 'group', 'aria-label': 'Answer the offer of ' + name }, decline, accept));
    accept.addEventListener('click', () => answer(frame.c, 'accept', name));
    decline.addEventListener('click', () => answer(frame.c, 'decline', name));
    cards.set(frame.c, { li, countdown, until: frame.until || Date.now() });
    list.appendChild(li);
    list.hidden = false;
    paint(cards.get(frame.c));
    notify('New conversation offered: ' + name);
  }

  async function answer(id, t, name) {
    const card = cards.get(id);
    if (!card) return;
    for (const button of card.li.querySelectorAll('button')) button.disabled = true;
    try {
      await live.request({ t, c: id });
      remove(id);
    } catch (error) {
      remove(id);
      notify((t === 'accept' ? 'Could not accept ' : 'Could not decline ') + name + ': ' + sentence(error.message), 'error');
    }
  }

  function paint(card) {
    const left = Math.max(0, Math.ceil((card.until - Date.now()) / 1000));
    setText(card.countdown, left > 0 ? `Answer within ${left} s` : 'Time is up');
  }

  function tick() {
    for (const card of cards.values()) paint(card);
  }

  function remove(id) {
    const card = cards.get(id);
    if (!card) return;
    card.li.remove();
    cards.delete(id);
    list.hidden = cards.size === 0;
  }

  // After a reconnect: offers made before it ended when the socket dropped (an agent who
  // disconnects loses them), and the server sends new ones.
  function clear() {
    for (const id of [...cards.keys()]) remove(id);
  }

  function destroy() {
    clearInterval(timer);
  }

  return { element: list, add, remove, clear, destroy };
}
