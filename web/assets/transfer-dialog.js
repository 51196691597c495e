// The transfer dialog of the workspace: a modal <dialog> to hand a conversation to a
// skill's queue or to a colleague, filled from GET /api/v1/roster (agents who are not
// online are listed but cannot be picked: only online agents take transfers).
// `submit(body, label)` performs the transfer ({skill_id} or {agent_id}); the dialog stays
// open and shows the server's message when it fails. Resolves true when transferred.

import { h, sentence } from './dom.js';

const STATE_LABEL = { online: 'Online', away: 'Away', back_soon: 'Back soon', offline: 'Offline' };

export function transferDialog({ roster, me, customer, submit }) {
  return new Promise((resolve) => {
    const skills = roster.skills || [];
    const agents = (roster.agents || []).filter((a) => a.id !== me.id);
    const anyOnline = agents.some((a) => a.state === 'online');
    const skillSelect = h('select', { id: 'transfer-skill', 'aria-label': 'Skill queue', disabled: !skills.length },
      skills.map((s) => h('option', { value: s.id }, s.name)));
    const agentSelect = h('select', { id: 'transfer-agent', 'aria-label': 'Agent', disabled: !anyOnline },
      agents.map(agentOption));
    const toSkill = h('input', { type: 'radio', name: 'target', id: 'transfer-to-skill', value: 'skill', checked: skills.length > 0, disabled: !skills.length });
    const toAgent = h('input', { type: 'radio', name: 'target', id: 'transfer-to-agent', value: 'agent', checked: !skills.length && anyOnline, disabled: !anyOnline });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const confirm = h('button', { type: 'submit', class: 'button primary', id: 'transfer-confirm' }, 'Transfer');
    const cancel = h('button', { type: 'button', class: 'button', id: 'transfer-cancel', onclick: () => dialog.close() }, 'Cancel');
    const form = h('form', { class: 'dialog-form' },
      h('h2', { id: 'transfer-title' }, 'Transfer conversation'),
      h('p', { class: 'muted' }, 'Hand ' + customer + ' over to a team queue or to a colleague. The whole history goes along.'),
      h('fieldset', { class: 'choice' },
        h('legend', {}, 'Transfer to'),
        h('div', { class: 'choice-row' }, toSkill, h('label', { for: 'transfer-to-skill' }, 'A skill queue'), skillSelect),
        h('div', { class: 'choice-row' }, toAgent, h('label', { for: 'transfer-to-agent' }, 'An agent'), agentSelect),
        anyOnline ? null : h('p', { class: 'muted small' }, 'No colleague is online right now.')),
      error,
      h('div', { class: 'dialog-actions' }, cancel, confirm));
    const dialog = h('dialog', { id: 'transfer-dialog', class: 'dialog', 'aria-labelledby': 'transfer-title' }, form);
    let done = false;

    // Picking from a list chooses its option too.
    skillSelect.addEventListener('focus', () => { toSkill.checked = true; });
    agentSelect.addEventListener('focus', () => { toAgent.checked = true; });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const choice = chosen();
      if (!choice) return showError('Choose a skill queue or an agent.');
      confirm.disabled = true;
      confirm.textContent = 'Transferring…';
      try {
        await submit(choice.body, choice.label);
        done = true;
        dialog.close();
      } catch (failure) {
        showError(sentence(failure.message));
      } finally {
        confirm.disabled = false;
        confirm.textContent = 'Transfer';
      }
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(done);
    });

    function chosen() {
      if (toSkill.checked && skillSelect.value) {
        const skill = skills.find((s) => String(s.id) === skillSelect.value);
        return { body: { skill_id: skill.id }, label: 'the ' + skill.name + ' queue' };
      }
      const agent = agents.find((a) => String(a.id) === agentSelect.value);
      if (toAgent.checked && agent && agent.state === 'online') return { body: { agent_id: agent.id }, label: agent.name };
      return null;
    }

    function showError(text) {
      error.textContent = text;
      error.hidden = false;
    }

    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

function agentOption(agent) {
  const full = agent.load >= agent.max_concurrent;
  const label = agent.name + ' — ' + (STATE_LABEL[agent.state] || agent.state) + ', ' + agent.load + ' / ' + agent.max_concurrent + ' chats';
  return h('option', { value: agent.id, disabled: agent.state !== 'online' || full }, label);
}
