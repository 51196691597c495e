// The transfer dialog of the workspace: a modal <dialog> to hand a conversation to a
// skill's queue or to a named agent, filled from GET /api/v1/roster. Resolves with the
// POST /api/v1/conversations/{id}/transfer body ({skill_id} or {agent_id}) and a label
// for the notice, or null when cancelled.

import { h } from './dom.js';

const STATE_LABEL = { online: 'Online', away: 'Away', back_soon: 'Back soon', offline: 'Offline' };

export function chooseTransferTarget({ roster, me, customer }) {
  return new Promise((resolve) => {
    const skills = roster.skills || [];
    const agents = (roster.agents || []).filter((a) => a.id !== me.id);
    const skillSelect = h('select', { id: 'transfer-skill' },
      skills.map((s) => h('option', { value: s.id }, s.name)));
    const agentSelect = h('select', { id: 'transfer-agent' },
      agents.map((a) => h('option', { value: a.id },
        a.name + ' — ' + (STATE_LABEL[a.state] || a.state) + ', ' + a.load + ' / ' + a.max_concurrent + ' chats')));
    const toSkill = h('input', { type: 'radio', name: 'target', id: 'transfer-to-skill', value: 'skill', checked: true });
    const toAgent = h('input', { type: 'radio', name: 'target', id: 'transfer-to-agent', value: 'agent', disabled: !agents.length });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const confirm = h('button', { type: 'submit', class: 'button primary', id: 'transfer-confirm' }, 'Transfer');
    const cancel = h('button', { type: 'button', class: 'button', onclick: () => dialog.close('') }, 'Cancel');
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', { id: 'transfer-title' }, 'Transfer conversation'),
      h('p', { class: 'muted' }, 'Hand ' + customer + ' over to a team queue or to a colleague. The whole history goes along.'),
      h('fieldset', { class: 'choice' },
        h('legend', {}, 'Transfer to'),
        h('div', { class: 'choice-row' }, toSkill, h('label', { for: 'transfer-to-skill' }, 'A skill queue'), skillSelect),
        h('div', { class: 'choice-row' }, toAgent, h('label', { for: 'transfer-to-agent' }, 'An agent'), agentSelect)),
      error,
      h('div', { class: 'dialog-actions' }, cancel, confirm));
    const dialog = h('dialog', { id: 'transfer-dialog', class: 'dialog', 'aria-labelledby': 'transfer-title' }, form);
    // Picking from a list chooses its option too.
    skillSelect.addEventListener('focus', () => { toSkill.checked = true; });
    agentSelect.addEventListener('focus', () => { if (!toAgent.disabled) toAgent.checked = true; });
    skillSelect.disabled = !skills.length;
    agentSelect.disabled = !agents.length;
    if (!skills.length) {
      toSkill.disabled = true;
      if (agents.length) toAgent.checked = true;
    }
    let choice = null;
    form.addEventListener('submit', (event) => {
      if (toSkill.checked && skillSelect.value) {
        const skill = skills.find((s) => String(s.id) === skillSelect.value);
        choice = { body: { skill_id: Number(skillSelect.value) }, label: 'the ' + skill.name + ' queue' };
      } else if (toAgent.checked && agentSelect.value) {
        const agent = agents.find((a) => String(a.id) === agentSelect.value);
        choice = { body: { agent_id: agent.id }, label: agent.name };
      } else {
        event.preventDefault();
        error.textContent = 'Nobody to transfer to.';
        error.hidden = false;
      }
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(choice);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}
