// Small SVG chart helpers shared by the dashboard and the reports pages: bar charts, grouped
// bars and histograms, drawn with DOM APIs (createElementNS, textContent — never parsed markup,
// so labels from the server stay text). Each chart is a <figure> holding an <svg role="img">
// with <title>/<desc>, a legend, and a visually-hidden data table for screen readers.
// Charts are drawn at the pixel width of their box (text stays 11 px) and redrawn on resize.
// Also: meter() (a thin load bar).

import { h, setText } from './dom.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
let nextId = 0;

// s('rect', {x: 1, class: 'bar'}, child...) — an SVG element; strings become text nodes.
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A thin horizontal bar: value / max. Returns {element, update(value, max)}.
export function meter(value, max, label) {
  const fill = h('span', { class: 'meter-fill' });
  const element = h('span', { class: 'meter', role: 'presentation' }, fill);
  const update = (v, m) => {
    const ratio = m > 0 ? Math.min(1, Math.max(0, v / m)) : 0;
    const width = (ratio * 100).toFixed(1) + '%';
    if (fill.style.width !== width) fill.style.width = width;
    element.classList.toggle('is-full', m > 0 && v >= m);
    element.classList.toggle('is-high', m > 0 && ratio >= 0.8 && v < m);
  };
  if (label) element.title = label;
  update(value, max);
  return { element, update };
}

// A "nice" axis maximum and tick step for values up to `max`, about `count` ticks.
export function niceScale(max, count = 4) {
  if (!(max > 0)) return { max: count, step: 1 };
  const raw = max / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = magnitude;
  for (const factor of [1, 2, 2.5, 5, 10]) {
    step = factor * magnitude;
    if (step >= raw) break;
  }
  if (step < 1) step = 1; // counts are integers
  return { max: Math.ceil(max / step) * step, step };
}

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
export const formatCount = (n) => (n === null || n === undefined ? '—' : integer.format(n));

/*
 barChart(options) → {element, update(options), destroy()}
 options:
   title        accessible name (also the hidden table's caption)
   description  optional longer text (<desc>)
   categories   [{label, long?, class?}]  label on the axis; long in tooltips and the data table;
                class added to the category's bars (e.g. per-score colours)
   series       [{name, values:[n...], class?}]  one series = plain bars/histogram, more = grouped
   height       plot height in px (default 220)
   histogram    true → bars touch (small gap), as a histogram
   maxBarWidth  widest bar in px (default 56, grouped 28, histogram 120)
   format       value → text (default integer)
   categoryName header of the first column in the data table (default "Category")
   compact      smaller margins, no y grid labels (mini charts)
   emptyText    shown over the plot when all values are 0
*/
export function barChart(options) {
  const id = 'chart-' + ++nextId;
  const canvas = h('div', { class: 'chart-canvas' });
  const legend = h('ul', { class: 'chart-legend', 'aria-hidden': 'true' });
  const table = h('table', { class: 'visually-hidden' });
  const element = h('figure', { class: 'chart' + (options.compact ? ' chart-compact' : '') }, canvas, legend, table);
  let current = options;
  let lastWidth = 0;

  const draw = () => {
    const width = Math.max(200, Math.floor(canvas.clientWidth || element.clientWidth || 600));
    lastWidth = width;
    const svgNode = render(current, width, id);
    const old = canvas.firstChild;
    if (old) canvas.replaceChild(svgNode, old);
    else canvas.appendChild(svgNode);
  };

  const update = (next) => {
    current = { ...current, ...next };
    draw();
    fillLegend(legend, current.series);
    fillTable(table, current);
  };

  let observer = null;
  if (typeof ResizeObserver === 'function') {
    observer = new ResizeObserver(() => {
      const width = Math.floor(canvas.clientWidth);
      if (width && Math.abs(width - lastWidth) > 2) draw();
    });
    observer.observe(canvas);
  }
  update(options);
  // The first draw may happen before the figure is in the document (width unknown).
  requestAnimationFrame(() => {
    if (Math.abs(Math.floor(canvas.clientWidth) - lastWidth) > 2 && canvas.clientWidth) draw();
  });
  return { element, update, destroy: () => observer && observer.disconnect() };
}

function fillLegend(legend, series) {
  while (legend.firstChild) legend.removeChild(legend.firstChild);
  legend.hidden = series.length < 2;
  series.forEach((item, index) => {
    legend.appendChild(h('li', null, h('span', { class: 'swatch ' + seriesClass(item, index) }), item.name));
  });
}

function fillTable(table, { title, categories, series, categoryName, format }) {
  const fmt = format || formatCount;
  while (table.firstChild) table.removeChild(table.firstChild);
  table.appendChild(h('caption', null, title));
  table.appendChild(
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, categoryName || 'Category'),
      series.map((item) => h('th', { scope: 'col' }, item.name)))),
  );
  table.appendChild(
    h('tbody', null, categories.map((category, i) =>
      h('tr', null, h('th', { scope: 'row' }, category.long || category.label),
        series.map((item) => h('td', null, fmt(item.values[i] ?? 0)))))),
  );
}

const seriesClass = (item, index) => item.class || 'series-' + index;

function render(options, width, id) {
  const { title, description, categories, series, histogram, compact, emptyText } = options;
  const fmt = options.format || formatCount;
  const plotHeight = options.height || 220;
  const margin = compact ? { top: 20, right: 4, bottom: 22, left: 4 } : { top: 12, right: 8, bottom: 28, left: 44 };
  const height = plotHeight + margin.top + margin.bottom;
  const plotWidth = width - margin.left - margin.right;
  const all = series.flatMap((item) => item.values.map((v) => v || 0));
  const dataMax = all.length ? Math.max(...all) : 0;
  const scale = niceScale(dataMax);
  const y = (v) => margin.top + plotHeight - (v / scale.max) * plotHeight;

  const svg = s('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart-svg',
    'aria-labelledby': `${id}-title`, 'aria-describedby': description ? `${id}-desc` : null,
  });
  svg.appendChild(s('title', { id: `${id}-title` }, title));
  if (description) svg.appendChild(s('desc', { id: `${id}-desc` }, description));

  // Y grid and labels.
  const grid = s('g', { class: 'chart-grid', 'aria-hidden': 'true' });
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
    const yy = Math.round(y(v)) + 0.5;
    grid.appendChild(s('line', { x1: margin.left, x2: width - margin.right, y1: yy, y2: yy, class: v === 0 ? 'axis' : null }));
    if (!compact) grid.appendChild(s('text', { x: margin.left - 6, y: yy + 4, 'text-anchor': 'end' }, formatCount(v)));
  }
  svg.appendChild(grid);

  // Bars.
  const n = Math.max(1, categories.length);
  const band = plotWidth / n;
  const groupPad = histogram ? Math.min(2, band * 0.06) : band * (n > 40 ? 0.15 : 0.22);
  const maxBar = options.maxBarWidth || (histogram ? 120 : series.length > 1 ? 28 : 56);
  const groupWidth = Math.min(Math.max(1, band - groupPad * 2), maxBar * series.length);
  const barWidth = groupWidth / Math.max(1, series.length);
  const groupOffset = (band - groupWidth) / 2;
  const bars = s('g', { class: 'chart-bars' });
  categories.forEach((category, i) => {
    series.forEach((item, k) => {
      const value = item.values[i] || 0;
      const x = margin.left + i * band + groupOffset + k * barWidth;
      const top = y(value);
      const barHeight = Math.max(0, margin.top + plotHeight - top);
      const rect = s('rect', {
        x: x.toFixed(2), y: (value > 0 ? Math.min(top, margin.top + plotHeight - 1) : margin.top + plotHeight).toFixed(2),
        width: Math.max(1, barWidth - (series.length > 1 ? 1 : 0)).toFixed(2),
        height: (value > 0 ? Math.max(1, barHeight) : 0).toFixed(2),
        class: 'bar ' + seriesClass(item, k) + (category.class ? ' ' + category.class : ''),
      });
      rect.appendChild(s('title', null, `${category.long || category.label}: ${fmt(value)}${series.length > 1 ? ' ' + item.name.toLowerCase() : ''}`));
      bars.appendChild(rect);
      if (compact && value > 0) {
        bars.appendChild(s('text', { x: (x + barWidth / 2).toFixed(2), y: (top - 3).toFixed(2), 'text-anchor': 'middle', class: 'bar-value', 'aria-hidden': 'true' }, fmt(value)));
      }
    });
  });
  svg.appendChild(bars);

  // X labels: as many as fit without overlapping.
  const longest = Math.max(1, ...categories.map((c) => String(c.label).length));
  const labelWidth = longest * 6.5 + 10;
  const every = Math.max(1, Math.ceil(labelWidth / band));
  const xAxis = s('g', { class: 'chart-x', 'aria-hidden': 'true' });
  categories.forEach((category, i) => {
    if (i % every !== 0) return;
    const cx = margin.left + i * band + band / 2;
    xAxis.appendChild(s('text', { x: cx.toFixed(2), y: margin.top + plotHeight + 16, 'text-anchor': 'middle' }, category.label));
  });
  svg.appendChild(xAxis);

  if (dataMax === 0 && emptyText) {
    svg.appendChild(s('text', { x: margin.left + plotWidth / 2, y: margin.top + plotHeight / 2, 'text-anchor': 'middle', class: 'chart-empty' }, emptyText));
  }
  return svg;
}
