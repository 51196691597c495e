// The customer panel of the workspace (#consumer-panel): who the agent is talking to
// (name, email and phone from the brand's token claims, device type, OS, app version,
// channel, skill) and their previous conversations with date, status and CSAT score.
// Clicking a previous conversation shows it in the thread (workspace passes onReveal).

import { h, clear, date, initials } from './dom.js';
import { icon } from './icons.js';
import { statusText } from './thread.js';
import { channelLabel } from './inbox-list.js';

const DEVICE_LABEL = { phone: 'Phone', tablet: 'Tablet', desktop: 'Desktop', web: 'Web browser' };

export function createConsumerPanel() {
  const element = h('aside', { id: 'consumer-panel', class: 'consumer-panel', 'aria-label': 'Customer details' });
  showNone();

  function showNone() {
    clear(element).appendChild(h('p', { class: 'panel-placeholder muted' }, 'Customer details appear here when you open a conversation.'));
  }

  // entry: the workspace entry; past: the consumer's conversations (null while loading).
  function show(entry, past, onReveal) {
    const consumer = entry.consumer || {};
    const device = consumer.device || {};
    clear(element).append(
      h('div', { class: 'panel-head' },
        h('span', { class: 'avatar large', 'aria-hidden': 'true' }, initials(entry.displayName)),
        h('h2', { class: 'panel-name' }, entry.displayName),
        consumer.external_id ? h('p', { class: 'muted small' }, 'Customer ID ' + consumer.external_id) : null),
      h('section', { class: 'panel-section', 'aria-label': 'Contact' },
        h('h3', {}, 'Contact'),
        h('dl', { class: 'facts' },
          fact('Email', consumer.email, 'mail'),
          fact('Phone', consumer.phone, 'call'))),
      h('section', { class: 'panel-section', 'aria-label': 'Device' },
        h('h3', {}, 'Device'),
        h('dl', { class: 'facts' },
          fact('Device type', DEVICE_LABEL[device.device_type] || device.device_type, device.device_type === 'desktop' ? 'desktop' : 'phone'),
          fact('OS', device.os, 'settings'),
          fact('App version', device.app_version, 'apps'),
          fact('Channel', channelLabel(entry.channel), 'chat'),
          entry.skill ? fact('Skill', entry.skill, 'skills') : null)),
      pastSection(entry, past, onReveal));
  }

  return { element, show, showNone };
}

function fact(label, value, iconName) {
  return h('div', { class: 'fact' },
    h('dt', {}, icon(iconName), label),
    h('dd', { class: value ? '' : 'muted' }, value || 'Not provided'));
}

function pastSection(entry, past, onReveal) {
  const others = (past || []).filter((c) => c.id !== entry.id);
  let body;
  if (past === null) body = h('p', { class: 'muted small' }, 'Loading…');
  else if (!others.length) body = h('p', { class: 'muted small' }, 'This is their first conversation.');
  else {
    body = h('ul', { class: 'past-list' }, others.map((c) => h('li', {},
      h('button', { type: 'button', class: 'past-item', onclick: () => onReveal(c.id) },
        h('span', { class: 'past-date' }, date(c.opened_at)),
        h('span', { class: 'status-pill ' + c.status }, statusText(c)),
        h('span', { class: 'csat' + (c.csat_score ? '' : ' none') }, c.csat_score ? '★ ' + c.csat_score + '/5' : 'No rating')))));
  }
  return h('section', { class: 'panel-section', 'aria-label': 'Previous conversations' },
    h('h3', {}, 'Previous conversations'), body);
}
