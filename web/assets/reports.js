// History reports (#/reports): a date range (From/To, presets Today / Last 7 days /
// Last 30 days) → GET /api/v1/reports?from&to&tz_offset, drawn as inline SVG charts
// (charts.js): conversations per hour (per day for ranges over 2 days), first-response
// and resolution time histograms with avg/p50/p90, CSAT distribution. #export-csv links to
// the CSV export of the same range. Every chart has an accessible name and a hidden data table.
// Below, the conversation search of the same range (history.js) with transcript exports.

import { get, query, ApiError } from './api.js';
import { h, duration, startOfDay, setText } from './dom.js';
import { barChart, formatCount, s } from './charts.js';
import { conversationSearch } from './history.js';

const MAX_DAYS = 92;
const DAY_MS = 86400000;
const oneDecimal = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const dayLabel = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const dayLong = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
const hourLabel = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });
const hourLong = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const rangeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

const PRESETS = [
  ['today', 'Today', 1],
  ['7d', 'Last 7 days', 7],
  ['30d', 'Last 30 days', 30],
];

export function render(root) {
  let stopped = false;
  let sequence = 0;

  const today = isoDate(Date.now());
  const fromInput = h('input', { type: 'date', id: 'report-from', name: 'from', required: true, max: today });
  const toInput = h('input', { type: 'date', id: 'report-to', name: 'to', required: true, max: today });
  const presetButtons = PRESETS.map(([key, label, days]) =>
    h('button', { type: 'button', class: 'seg', 'aria-pressed': 'false', dataset: { preset: key },
      onclick: () => applyPreset(days) }, label));
  const status = h('span', { class: 'report-status', role: 'status' });
  const errorBox = h('div', { class: 'mgr-alert', role: 'alert', hidden: true });
  const exportLink = h('a', { id: 'export-csv', class: 'button', href: '#', download: 'conversations.csv' },
    s('svg', { viewBox: '0 0 24 24', class: 'icon', 'aria-hidden': 'true', focusable: 'false' },
      s('path', { d: 'M12 4v11' }), s('path', { d: 'M7 10l5 5 5-5' }), s('path', { d: 'M5 20h14' })),
    'Export CSV');

  const form = h('form', { class: 'report-toolbar', 'aria-label': 'Report range', onsubmit: (e) => { e.preventDefault(); load(); } },
    h('div', { class: 'field-inline' }, h('label', { for: 'report-from' }, 'From'), fromInput),
    h('div', { class: 'field-inline' }, h('label', { for: 'report-to' }, 'To'), toInput),
    h('div', { class: 'segmented', role: 'group', 'aria-label': 'Presets' }, presetButtons),
    status);
  fromInput.addEventListener('change', () => load());
  toInput.addEventListener('change', () => load());

  const cards = {
    opened: statCard('Conversations opened'),
    closed: statCard('Conversations closed'),
    frt: statCard('Avg first response'),
    resolution: statCard('Avg resolution time'),
    csat: statCard('CSAT average'),
  };

  const volumeTitle = h('h2', { id: 'volume-heading' }, 'Conversations per hour');
  const volumeChart = barChart({
    title: 'Conversations per hour', categories: [], categoryName: 'Time',
    series: [{ name: 'Opened', values: [], class: 'series-opened' }, { name: 'Closed', values: [], class: 'series-closed' }],
    height: 220, emptyText: 'No conversations in this range',
  });
  const frt = timingPanel('frt', 'First response time', 'Time from a conversation opening to the first agent reply.');
  const resolution = timingPanel('resolution', 'Resolution time', 'Time from a conversation opening to its close.');
  const csatSummary = h('p', { class: 'figure-row' });
  const csatChart = barChart({
    title: 'CSAT responses by score', categoryName: 'Score',
    categories: [1, 2, 3, 4, 5].map((n) => ({ label: String(n), long: `Score ${n}`, class: `score-${n}` })),
    series: [{ name: 'Responses', values: [0, 0, 0, 0, 0], class: 'series-csat' }],
    height: 160, emptyText: 'No survey answers in this range',
  });

  const content = h('div', { class: 'report-content' },
    h('div', { class: 'kpis' }, Object.values(cards).map((c) => c.element)),
    h('section', { class: 'card', 'aria-labelledby': 'volume-heading' },
      h('div', { class: 'card-head' }, volumeTitle), volumeChart.element),
    h('div', { class: 'dash-grid dash-grid-even' }, frt.element, resolution.element),
    h('section', { class: 'card', 'aria-labelledby': 'csat-report-heading' },
      h('div', { class: 'card-head' }, h('h2', { id: 'csat-report-heading' }, 'Customer satisfaction (CSAT)')),
      csatSummary, csatChart.element));

  const rangeText = h('p', { class: 'mgr-sub report-range', 'aria-live': 'polite' }, '');
  const search = conversationSearch();
  root.appendChild(h('section', { id: 'reports', class: 'mgr-page', 'aria-label': 'Reports' },
    h('div', { class: 'mgr-header' }, form, h('div', { class: 'mgr-header-aside' }, exportLink)),
    rangeText, errorBox, content, search.element));

  function applyPreset(days) {
    fromInput.value = presetFrom(days);
    toInput.value = isoDate(Date.now());
    load();
  }

  function range() {
    const from = parseDate(fromInput.value);
    const toDay = parseDate(toInput.value);
    if (from === null || toDay === null) return { error: 'Choose a From and a To date.' };
    const toDate = new Date(toDay);
    const to = new Date(toDate.getFullYear(), toDate.getMonth(), toDate.getDate() + 1).getTime();
    if (to <= from) return { error: 'The From date must be on or before the To date.' };
    const days = Math.round((to - from) / DAY_MS);
    if (days > MAX_DAYS) return { error: `Choose a range of at most ${MAX_DAYS} days (this one has ${days}).` };
    return { from, to, days };
  }

  function markPreset(r) {
    for (const button of presetButtons) {
      const days = PRESETS.find(([key]) => key === button.dataset.preset)[2];
      const pressed = !r.error && toInput.value === isoDate(Date.now()) && fromInput.value === presetFrom(days);
      button.setAttribute('aria-pressed', pressed ? 'true' : 'false');
    }
  }

  async function load() {
    const r = range();
    markPreset(r);
    fromInput.setAttribute('aria-invalid', r.error ? 'true' : 'false');
    toInput.setAttribute('aria-invalid', r.error ? 'true' : 'false');
    if (r.error) {
      showError(r.error);
      return;
    }
    const params = { from: r.from, to: r.to };
    search.setRange(r.from, r.to);
    exportLink.href = '/api/v1/reports/conversations.csv' + query(params);
    exportLink.setAttribute('download', `conversations-${fromInput.value}-to-${toInput.value}.csv`);
    const first = rangeFormat.format(new Date(r.from));
    const last = rangeFormat.format(new Date(r.to - 1));
    setText(rangeText, r.days === 1 ? first : `${first} – ${last} · ${r.days} days`);
    const mine = ++sequence;
    content.classList.add('is-loading');
    content.setAttribute('aria-busy', 'true');
    setText(status, 'Loading…');
    try {
      const data = await get('/api/v1/reports' + query({ ...params, tz_offset: new Date().getTimezoneOffset() * -1 }));
      if (stopped || mine !== sequence) return;
      showError(null);
      draw(data, r);
      setText(status, '');
    } catch (error) {
      if (stopped || mine !== sequence) return;
      const message = error instanceof ApiError ? error.message : String(error);
      showError(`Could not load the report: ${message}`);
      setText(status, '');
    } finally {
      if (mine === sequence) {
        content.classList.remove('is-loading');
        content.removeAttribute('aria-busy');
      }
    }
  }

  function showError(message) {
    errorBox.hidden = !message;
    setText(errorBox, message || '');
  }

  function draw(data, r) {
    setText(cards.opened.value, formatCount(data.opened ?? 0));
    setText(cards.closed.value, formatCount(data.closed ?? 0));
    setText(cards.opened.note, `${formatCount(data.off_hours_arrivals ?? 0)} after hours`);
    setText(cards.closed.note, `${formatCount(data.auto_closed ?? 0)} auto-closed`);
    setText(cards.frt.value, duration(data.first_response?.avg_secs));
    setText(cards.frt.note, data.first_response?.p90_secs == null ? '' : `90% within ${duration(data.first_response.p90_secs)}`);
    setText(cards.resolution.value, duration(data.resolution?.avg_secs));
    setText(cards.resolution.note, data.resolution?.p90_secs == null ? '' : `90% within ${duration(data.resolution.p90_secs)}`);
    const csat = data.csat || { responses: 0, average: null, distribution: [] };
    setText(cards.csat.value, csat.average == null ? '—' : oneDecimal.format(csat.average) + ' / 5');
    setText(cards.csat.note, `${formatCount(csat.responses || 0)} ${csat.responses === 1 ? 'response' : 'responses'}`);

    const volume = volumeSeries(data.hourly || [], r);
    setText(volumeTitle, volume.perDay ? 'Conversations per day' : 'Conversations per hour');
    volumeChart.update({
      title: volume.perDay ? 'Conversations opened and closed per day' : 'Conversations opened and closed per hour',
      categoryName: volume.perDay ? 'Day' : 'Hour',
      categories: volume.categories,
      series: [
        { name: 'Opened', values: volume.opened, class: 'series-opened' },
        { name: 'Closed', values: volume.closed, class: 'series-closed' },
      ],
    });

    frt.update(data.first_response);
    resolution.update(data.resolution);

    const distribution = (csat.distribution || []).slice(0, 5);
    while (distribution.length < 5) distribution.push(0);
    csatChart.update({ series: [{ name: 'Responses', values: distribution, class: 'series-csat' }] });
    setText(csatSummary, csat.responses
      ? `Average ${oneDecimal.format(csat.average ?? 0)} / 5 from ${formatCount(csat.responses)} ${csat.responses === 1 ? 'response' : 'responses'} · ${percent(distribution[3] + distribution[4], distribution.reduce((a, b) => a + b, 0))} satisfied (4–5)`
      : 'No survey answers in this range.');
  }

  function timingPanel(key, title, description) {
    const figures = {};
    const row = h('dl', { class: 'figures' }, [['avg', 'Average'], ['p50', 'Median (p50)'], ['p90', '90th percentile'], ['count', 'Conversations']]
      .map(([k, label]) => {
        figures[k] = h('dd', null, '—');
        return h('div', { class: 'figure' }, h('dt', null, label), figures[k]);
      }));
    const chart = barChart({
      title: `${title} distribution`, description, categoryName: 'Time', categories: [],
      series: [{ name: 'Conversations', values: [], class: 'series-timing' }],
      histogram: true, height: 160, emptyText: 'No data in this range',
    });
    const element = h('section', { class: 'card', 'aria-labelledby': `${key}-heading` },
      h('div', { class: 'card-head' }, h('h2', { id: `${key}-heading` }, title)),
      h('p', { class: 'card-desc' }, description), row, chart.element);
    return {
      element,
      destroy: () => chart.destroy(),
      update(stats) {
        stats = stats || { count: 0, histogram: [] };
        setText(figures.avg, duration(stats.avg_secs));
        setText(figures.p50, duration(stats.p50_secs));
        setText(figures.p90, duration(stats.p90_secs));
        setText(figures.count, formatCount(stats.count ?? 0));
        const histogram = stats.histogram || [];
        chart.update({
          categories: histogram.map((bin) => ({ label: bin.label, long: bin.label })),
          series: [{ name: 'Conversations', values: histogram.map((bin) => bin.count || 0), class: 'series-timing' }],
        });
      },
    };
  }

  const charts = [volumeChart, csatChart, frt, resolution];
  applyPreset(7);
  return () => {
    stopped = true;
    search.destroy();
    charts.forEach((c) => c.destroy());
  };
}

// Hourly buckets, or per local day for ranges over 2 days (summed client-side).
function volumeSeries(hourly, r) {
  const perDay = r.days > 2;
  if (!perDay) {
    return {
      perDay,
      categories: hourly.map((b) => {
        const date = new Date(b.hour);
        const label = r.days > 1 && date.getHours() === 0 ? dayLabel.format(date) : hourLabel.format(date);
        return { label, long: `${dayLong.format(date)}, ${hourLong.format(date)}` };
      }),
      opened: hourly.map((b) => b.opened || 0),
      closed: hourly.map((b) => b.closed || 0),
    };
  }
  const days = new Map();
  for (let t = r.from; t < r.to; ) {
    days.set(t, { opened: 0, closed: 0 });
    const d = new Date(t);
    t = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTime();
  }
  for (const b of hourly) {
    const key = startOfDay(b.hour);
    const day = days.get(key) || days.set(key, { opened: 0, closed: 0 }).get(key);
    day.opened += b.opened || 0;
    day.closed += b.closed || 0;
  }
  const keys = [...days.keys()].sort((a, b) => a - b);
  return {
    perDay,
    categories: keys.map((k) => ({ label: dayLabel.format(new Date(k)), long: dayLong.format(new Date(k)) })),
    opened: keys.map((k) => days.get(k).opened),
    closed: keys.map((k) => days.get(k).closed),
  };
}

function statCard(label) {
  const value = h('span', { class: 'kpi-value' }, '—');
  const note = h('span', { class: 'kpi-note' });
  return { element: h('div', { class: 'kpi' }, h('span', { class: 'kpi-label' }, label), value, note), value, note };
}

function percent(part, total) {
  return total ? Math.round((part / total) * 100) + '%' : '—';
}

// First day of a preset of `days` days ending today.
function presetFrom(days) {
  const d = new Date();
  return isoDate(new Date(d.getFullYear(), d.getMonth(), d.getDate() - (days - 1), 12).getTime());
}

// Local calendar date of `ms` as YYYY-MM-DD (the value format of <input type=date>).
function isoDate(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

// Local midnight of a YYYY-MM-DD value, or null.
function parseDate(value) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || '');
  if (!match) return null;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3])).getTime();
}
