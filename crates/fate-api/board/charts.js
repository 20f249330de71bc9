// SVG charts drawn by hand (no chart library: the board has no build step). Each function
// returns an <svg> element.
const NS = 'http://www.w3.org/2000/svg';
export const COLOURS = ['#2f80ed', '#eb5757', '#27ae60', '#f2994a', '#9b51e0', '#56ccf2', '#333'];

export function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function ticks(min, max, n = 5) {
  if (!(max > min)) return [min];
  const step0 = (max - min) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) out.push(+t.toFixed(10));
  return out;
}

function fmt(x) {
  if (Math.abs(x) >= 1000 || x === Math.round(x)) return String(Math.round(x * 100) / 100);
  return String(+x.toPrecision(3));
}

/**
 * A line chart. `series`: [{name, points: [[x, y], ...]}]. Options: title, xLabel, yLabel,
 * width, height, diagonal (draw y = x), xDomain, yDomain.
 */
export function lineChart(series, opt = {}) {
  const W = opt.width || 460, H = opt.height || 300;
  const m = { l: 52, r: 16, t: opt.title ? 26 : 12, b: 40 };
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  let [x0, x1] = opt.xDomain || [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = opt.yDomain || [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (!all.length) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 = y0 + 1; y0 = y0 - 1; }
  const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart line-chart' });
  if (opt.title) svg.append(el('text', { x: m.l, y: 16, 'font-weight': 600 }, opt.title));
  const axis = el('g', { class: 'axis' });
  for (const t of ticks(x0, x1)) {
    axis.append(el('line', { class: 'gridline', x1: sx(t), x2: sx(t), y1: m.t, y2: H - m.b }));
    axis.append(el('text', { x: sx(t), y: H - m.b + 14, 'text-anchor': 'middle' }, fmt(t)));
  }
  for (const t of ticks(y0, y1)) {
    axis.append(el('line', { class: 'gridline', x1: m.l, x2: W - m.r, y1: sy(t), y2: sy(t) }));
    axis.append(el('text', { x: m.l - 6, y: sy(t) + 4, 'text-anchor': 'end' }, fmt(t)));
  }
  axis.append(el('path', { d: `M${m.l},${m.t}V${H - m.b}H${W - m.r}`, fill: 'none' }));
  if (opt.xLabel) axis.append(el('text', { x: (m.l + W - m.r) / 2, y: H - 6, 'text-anchor': 'middle' }, opt.xLabel));
  if (opt.yLabel) axis.append(el('text', { x: 12, y: (m.t + H - m.b) / 2, transform: `rotate(-90 12 ${(m.t + H - m.b) / 2})`, 'text-anchor': 'middle' }, opt.yLabel));
  svg.append(axis);
  if (opt.diagonal) {
    svg.append(el('path', { d: `M${sx(x0)},${sy(y0)}L${sx(x1)},${sy(y1)}`, stroke: '#bcccdc', 'stroke-dasharray': '4 4', fill: 'none' }));
  }
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    const d = pts.map((p, j) => `${j ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
    const colour = s.colour || COLOURS[i % COLOURS.length];
    const path = el('path', { d, fill: 'none', stroke: colour, 'stroke-width': 2, class: 'series', 'data-series': s.name, 'data-points': pts.length });
    path.append(el('title', {}, s.name));
    svg.append(path);
    if (pts.length <= 60) {
      for (const p of pts) {
        const c = el('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: colour, class: 'point' });
        c.append(el('title', {}, `${s.name}: (${fmt(p[0])}, ${fmt(p[1])})`));
        svg.append(c);
      }
    }
  });
  if (series.length > 1) {
    series.forEach((s, i) => {
      const y = m.t + 4 + i * 14;
      svg.append(el('rect', { x: W - m.r - 110, y, width: 10, height: 3, fill: s.colour || COLOURS[i % COLOURS.length] }));
      svg.append(el('text', { x: W - m.r - 96, y: y + 5 }, s.name));
    });
  }
  return svg;
}

/** A horizontal bar chart. `items`: [{label, value, title}]. */
export function barChart(items, opt = {}) {
  const W = opt.width || 520, bar = 18, gap = 4;
  const labelW = Math.min(200, 8 + 7 * Math.max(4, ...items.map((i) => String(i.label).length)));
  const H = 20 + items.length * (bar + gap);
  const max = Math.max(...items.map((i) => i.value), 1e-12);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: `chart bar-chart ${opt.cls || ''}` });
  items.forEach((it, i) => {
    const y = 10 + i * (bar + gap);
    const w = Math.max(1, ((W - labelW - 70) * it.value) / max);
    const g = el('g', { class: 'bar', 'data-label': it.label, 'data-value': it.value });
    g.append(el('text', { x: labelW - 6, y: y + 13, 'text-anchor': 'end' }, it.label));
    const r = el('rect', { x: labelW, y, width: w, height: bar, fill: it.colour || COLOURS[0] });
    r.append(el('title', {}, it.title || `${it.label}: ${it.value}`));
    g.append(r);
    g.append(el('text', { x: labelW + w + 4, y: y + 13 }, fmt(it.value)));
    svg.append(g);
  });
  return svg;
}

export const STATE_FILL = {
  success: '#c6f7e2', running: '#cfe2ff', waiting: '#fff3c4', ready: '#fff3c4', failed: '#ffd6d6',
  timeout: '#ffd6d6', canceled: '#e4e7eb', pass: '#e3f8ff',
};

/**
 * The DAG: `nodes` [{name, component, state}], `edges` [[from, to]]. Nodes are layered by
 * dependency (a node's layer is one more than its deepest upstream), left to right within a
 * layer by name. `onClick(name)` opens a task.
 */
export function dagChart(nodes, edges, onClick) {
  const layer = {};
  const ups = {};
  for (const n of nodes) ups[n.name] = [];
  for (const [a, b] of edges) if (ups[b] && ups[a]) ups[b].push(a);
  const depth = (n, seen = new Set()) => {
    if (layer[n] !== undefined) return layer[n];
    if (seen.has(n)) return 0;
    seen.add(n);
    const d = ups[n].length ? 1 + Math.max(...ups[n].map((u) => depth(u, seen))) : 0;
    layer[n] = d;
    return d;
  };
  nodes.forEach((n) => depth(n.name));
  const rows = [];
  for (const n of nodes) (rows[layer[n.name]] ||= []).push(n);
  rows.forEach((r) => r && r.sort((a, b) => a.name.localeCompare(b.name)));
  const BW = 170, BH = 46, GX = 30, GY = 46;
  const widest = Math.max(1, ...rows.map((r) => (r ? r.length : 0)));
  const W = Math.max(360, widest * (BW + GX) + GX), H = rows.length * (BH + GY) + GY;
  const pos = {};
  rows.forEach((r, i) => {
    if (!r) return;
    const total = r.length * BW + (r.length - 1) * GX;
    r.forEach((n, j) => { pos[n.name] = { x: (W - total) / 2 + j * (BW + GX), y: GY / 2 + i * (BH + GY) }; });
  });
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart dag' });
  const defs = el('defs');
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.append(el('path', { d: 'M0,0L10,5L0,10z', fill: '#829ab1' }));
  defs.append(marker);
  svg.append(defs);
  for (const [a, b] of edges) {
    if (!pos[a] || !pos[b]) continue;
    const x1 = pos[a].x + BW / 2, y1 = pos[a].y + BH, x2 = pos[b].x + BW / 2, y2 = pos[b].y;
    const my = (y1 + y2) / 2;
    svg.append(el('path', { class: 'dag-edge', d: `M${x1},${y1}C${x1},${my} ${x2},${my} ${x2},${y2 - 2}`, 'marker-end': 'url(#arrow)', 'data-from': a, 'data-to': b }));
  }
  for (const n of nodes) {
    const p = pos[n.name];
    const g = el('g', { class: 'dag-node', transform: `translate(${p.x},${p.y})`, 'data-task': n.name, 'data-state': n.state || 'unknown', cursor: 'pointer' });
    g.append(el('rect', { width: BW, height: BH, fill: STATE_FILL[n.state] || '#fff' }));
    g.append(el('text', { x: 10, y: 18, 'font-weight': 600 }, n.name));
    g.append(el('text', { x: 10, y: 35 }, `${n.component} · ${n.state || '?'}`));
    const t = el('title', {}, `${n.name} (${n.component}): ${n.state}${n.detail ? '\n' + n.detail : ''}`);
    g.append(t);
    if (onClick) g.addEventListener('click', () => onClick(n.name));
    svg.append(g);
  }
  return svg;
}

/** A binary tree of SecureBoost nodes (`nodes[i].l`/`.r` children ids, -1 for none). */
export function treeChart(nodes, label) {
  const depthOf = {};
  const order = [];
  const walk = (id, d) => {
    const n = nodes[id];
    if (!n || depthOf[id] !== undefined || d > 12) return;
    depthOf[id] = d;
    if (n.l >= 0 && !n.is_leaf) walk(n.l, d + 1);
    order.push(id);
    if (n.r >= 0 && !n.is_leaf) walk(n.r, d + 1);
  };
  walk(0, 0);
  const BW = 96, BH = 34, GX = 6, GY = 30;
  const maxD = Math.max(0, ...Object.values(depthOf));
  const W = Math.max(200, order.length * (BW + GX)), H = (maxD + 1) * (BH + GY) + 10;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart tree' });
  const pos = {};
  order.forEach((id, i) => { pos[id] = { x: i * (BW + GX), y: 5 + depthOf[id] * (BH + GY) }; });
  for (const id of order) {
    const n = nodes[id];
    for (const c of [n.l, n.r]) {
      if (c >= 0 && pos[c] && !n.is_leaf) {
        svg.append(el('path', { class: 'dag-edge', d: `M${pos[id].x + BW / 2},${pos[id].y + BH}L${pos[c].x + BW / 2},${pos[c].y}` }));
      }
    }
  }
  for (const id of order) {
    const n = nodes[id];
    const g = el('g', { class: 'tree-node', transform: `translate(${pos[id].x},${pos[id].y})` });
    g.append(el('rect', { width: BW, height: BH, rx: 4, fill: n.is_leaf ? '#e3f8ff' : '#fff', stroke: '#9fb3c8' }));
    g.append(el('text', { x: 4, y: 14 }, label(n)[0]));
    g.append(el('text', { x: 4, y: 28 }, label(n)[1]));
    svg.append(g);
  }
  return svg;
}
