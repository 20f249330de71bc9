// A task's detail: parameters, metrics (curves, tables, summaries), models and output data,
// all read from FATE-Flow's output API (/v2/output/metric/query, /v2/output/model/query,
// /v2/output/data/display) as FATE's client reads them, and the task's protocol transcript at
// this party (/v2/job/task/transcript, fate-rs's: what it sent and received, never payloads).
import * as api from './api.js';
import { barChart, lineChart, treeChart } from './charts.js';
import { h, status, duration, time } from './views.js';

const num = (x, d = 6) => (typeof x === 'number' ? +x.toPrecision(d) : x);

function kvTable(obj, id) {
  return h('table', { class: 'kv', id }, Object.entries(obj || {}).map(([k, v]) =>
    h('tr', {}, h('th', {}, k), h('td', { class: 'mono' }, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)))));
}

function jsonBlock(v) {
  return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
}

/** Loss per iteration: `[x, ...]`, `[{step, metric}]` (CoordinatedLR) or `[{step, loss}]` (SecureBoost). */
function lossPoints(data) {
  if (!Array.isArray(data)) return [];
  return data.map((d, i) => (typeof d === 'number' ? [i, d] : [d.step ?? i, d.loss ?? d.metric ?? d.value])).filter((p) => typeof p[1] === 'number');
}

function card(title, id, ...body) {
  return h('div', { class: 'card metric', id, 'data-metric': id }, h('h3', {}, title), ...body);
}

/** Renders one metric record `{name, type, data}`; `tag` tells inputs apart. */
function metricView(m, tag) {
  const d = m.data || {};
  const id = `metric-${m.name}${tag}`;
  if (m.type === 'loss') {
    const pts = lossPoints(m.data);
    return card(`${m.name}: loss per iteration (${pts.length})`, id,
      lineChart([{ name: 'loss', points: pts }], { xLabel: 'iteration', yLabel: 'loss' }));
  }
  switch (m.name) {
    case 'auc': {
      const pts = (d.roc || []).map((r) => [r.fpr, r.tpr]);
      return card('ROC', id,
        h('p', {}, 'AUC ', h('strong', { class: 'auc-value', 'data-value': d.auc }, String(num(d.auc)))),
        lineChart([{ name: 'ROC', points: pts }], { xLabel: 'false positive rate', yLabel: 'true positive rate', xDomain: [0, 1], yDomain: [0, 1], diagonal: true, cls: 'roc' }));
    }
    case 'ks': {
      const rows = d.curve || [];
      const x = (r, i) => (typeof r.cuts === 'number' ? r.cuts : i);
      return card('KS', id, h('p', {}, 'KS ', h('strong', { class: 'ks-value', 'data-value': d.ks }, String(num(d.ks)))),
        lineChart([
          { name: 'tpr', points: rows.map((r, i) => [x(r, i), r.tpr]) },
          { name: 'fpr', points: rows.map((r, i) => [x(r, i), r.fpr]) },
          { name: 'tpr − fpr', points: rows.map((r, i) => [x(r, i), r.tpr - r.fpr]) },
        ], { xLabel: 'cut', yLabel: 'rate', yDomain: [0, 1] }));
    }
    case 'lift':
    case 'gain': {
      const rows = d[m.name] || [];
      const [kx, ky] = [`${m.name}x`, `${m.name}y`];
      return card(m.name === 'lift' ? 'Lift' : 'Gain', id,
        lineChart([
          { name: 'positive', points: rows.map((r) => [r[kx]?.[1], r[ky]?.[1]]) },
          { name: 'negative', points: rows.map((r) => [r[kx]?.[0], r[ky]?.[0]]) },
        ], { xLabel: 'population share', yLabel: m.name }));
    }
    case 'confusion_matrix': {
      const rows = d.confusion_matrix || [];
      if (!rows.length) return null;
      let best = rows.reduce((a, r) => (Math.abs(r.threshold - 0.5) < Math.abs(a.threshold - 0.5) ? r : a), rows[0]);
      const body = h('div', {});
      const select = h('select', { class: 'cm-threshold' }, rows.map((r, i) => h('option', { value: i }, `threshold ${num(r.threshold, 4)}`)));
      select.value = rows.indexOf(best);
      const draw = () => {
        const r = rows[+select.value];
        body.replaceChildren(h('table', { class: 'confusion' },
          h('tr', {}, h('th', {}, ''), h('th', {}, 'predicted 1'), h('th', {}, 'predicted 0')),
          h('tr', {}, h('th', {}, 'actual 1'), h('td', { class: 'num' }, r.tp), h('td', { class: 'num' }, r.fn)),
          h('tr', {}, h('th', {}, 'actual 0'), h('td', { class: 'num' }, r.fp), h('td', { class: 'num' }, r.tn))));
      };
      select.addEventListener('change', draw);
      draw();
      return card('Confusion matrix', id, select, body);
    }
    case 'evaluation':
      return null;
    default:
      break;
  }
  const scalar = typeof d[m.name] === 'number';
  if (scalar) return null; // summarised in the table of scalar metrics
  if (Array.isArray(d[m.name]) && d[m.name].length && typeof d[m.name][0] === 'object') {
    const rows = d[m.name];
    const cols = Object.keys(rows[0]);
    return card(m.name, id, h('div', { class: 'scroll' }, h('table', {}, h('tr', {}, cols.map((c) => h('th', {}, c))),
      rows.slice(0, 200).map((r) => h('tr', {}, cols.map((c) => h('td', { class: 'num' }, String(num(r[c])))))))));
  }
  if (m.type === 'summary' || m.type === 'custom' || typeof m.data === 'object') {
    return card(m.name === 'upload' ? 'Upload summary' : `${m.name} (${m.type})`, id, kvTable(m.data, m.name === 'upload' ? 'upload-summary' : undefined));
  }
  return card(m.name, id, jsonBlock(m.data));
}

/** Precision-recall from the precision and recall tables, matched by position. */
function prView(metrics) {
  const p = metrics.find((m) => m.name === 'biclass_precision_table');
  const r = metrics.find((m) => m.name === 'biclass_recall_table');
  if (!p || !r) return null;
  const pr = p.data.biclass_precision_table || [], rr = r.data.biclass_recall_table || [];
  const pts = pr.map((row, i) => [rr[i]?.r, row.p]).filter((x) => typeof x[0] === 'number');
  return card('Precision-recall', 'metric-pr', lineChart([{ name: 'PR', points: pts }], { xLabel: 'recall', yLabel: 'precision', xDomain: [0, 1], yDomain: [0, 1] }));
}

function scalarsView(metrics) {
  const rows = metrics.filter((m) => typeof (m.data || {})[m.name] === 'number');
  if (!rows.length) return null;
  return card('Summary', 'metric-summary', h('table', { id: 'scalar-metrics' },
    h('tr', {}, h('th', {}, 'metric'), h('th', {}, 'type'), h('th', {}, 'input'), h('th', {}, 'value')),
    rows.map((m) => h('tr', { 'data-name': m.name }, h('td', {}, m.name), h('td', {}, m.type), h('td', {}, m.data.input || ''), h('td', { class: 'num', 'data-value': m.data[m.name] }, String(num(m.data[m.name])))))));
}

/** Every estimator in a model (objects with `param.coef_`), with the path to it. */
function estimators(v, path = [], out = []) {
  if (!v || typeof v !== 'object') return out;
  if (v.param && Array.isArray(v.param.coef_)) { out.push({ path: path.join('.'), est: v }); return out; }
  for (const [k, c] of Object.entries(v)) estimators(c, [...path, k], out);
  return out;
}

function lrView(key, model) {
  const found = estimators(model.data);
  if (!found.length) return null;
  return card(`CoordinatedLR weights (${key})`, 'model-lr', found.map(({ path, est }) => {
    const header = est.header || [];
    const coef = est.param.coef_.map((c) => (Array.isArray(c) ? c[0] : c));
    const icpt = est.param.intercept_;
    return h('div', {}, path ? h('p', { class: 'muted' }, path) : null,
      h('p', {}, `${coef.length} weights · ${est.is_converged ? 'converged' : 'not converged'} · end epoch ${est.end_epoch ?? '?'}`),
      h('div', { class: 'scroll' }, h('table', { class: 'lr-weights' },
        h('tr', {}, h('th', {}, 'feature'), h('th', {}, 'weight')),
        coef.map((w, i) => h('tr', { 'data-feature': header[i] ?? i }, h('td', {}, header[i] ?? `x${i}`), h('td', { class: 'num' }, String(num(w))))),
        icpt !== null && icpt !== undefined ? h('tr', { class: 'intercept', 'data-feature': 'intercept' }, h('th', {}, 'intercept'), h('td', { class: 'num' }, String(num(Array.isArray(icpt) ? icpt[0] : icpt)))) : null)));
  }));
}

function sbtView(key, model) {
  const d = model.data || {};
  if (!d.feature_importance || !Array.isArray(d.trees)) return null;
  const items = Object.entries(d.feature_importance).map(([f, imp]) => ({ label: f, value: imp.gain, title: `${f}: gain ${imp.gain}, ${imp.split} splits` }));
  for (const [site, imp] of Object.entries(d.host_feature_importance || {})) {
    items.push({ label: site, value: imp.gain, colour: '#f2994a', title: `${site} (host features): gain ${imp.gain}, ${imp.split} splits` });
  }
  items.sort((a, b) => b.value - a.value);
  const treeBox = h('div', { class: 'scroll', id: 'sbt-tree' });
  const pick = h('select', { id: 'tree-select' }, d.trees.map((_, i) => h('option', { value: i }, `tree ${i}`)));
  const drawTree = () => {
    const t = d.trees[+pick.value];
    treeBox.replaceChildren(treeChart(t.nodes, (n) => (n.is_leaf
      ? ['leaf', n.weight !== undefined ? `w ${num(n.weight, 3)}` : '']
      : [n.fid ? `${n.fid}` : `${n.sitename}`, n.bid !== null && n.bid !== undefined ? `≤ ${num(n.bid, 4)}` : `split ${n.split_id ?? ''}`])));
  };
  pick.addEventListener('change', drawTree);
  drawTree();
  return card(`SecureBoost (${key}): ${d.trees.length} trees`, 'model-sbt',
    h('h3', {}, 'Feature importance (gain)'), barChart(items, { cls: 'importance' }),
    h('h3', {}, 'Trees'), pick, treeBox);
}

function modelsView(models) {
  const out = [];
  for (const [key, m] of Object.entries(models || {})) {
    const v = lrView(key, m) || sbtView(key, m);
    out.push(v || card(`Model ${key} (${m.component})`, `model-${key}`, jsonBlock(m.data)));
  }
  return out;
}

function dataView(outputs) {
  return Object.entries(outputs || {}).map(([key, o]) => {
    const header = o.header || [];
    return card(`Output data ${key}: first ${o.data.length} rows`, `data-${key}`, h('div', { class: 'scroll' }, h('table', { class: 'data-preview' },
      h('tr', {}, header.map((c) => h('th', {}, c))),
      o.data.map((row) => h('tr', {}, row.map((c) => h('td', { class: 'mono' }, Array.isArray(c) ? c.map((x) => num(x, 4)).join(', ') : String(c ?? ''))))))));
  });
}

export async function taskDetail(view, jobId, role, partyId, taskName) {
  const q = { job_id: jobId, role, party_id: partyId, task_name: taskName };
  const tasks = await api.get('/v2/job/task/query', q);
  const t = tasks.reduce((a, b) => (b.task_version > a.task_version ? b : a), tasks[0]);
  view.append(
    h('p', {}, h('a', { href: `#/job/${encodeURIComponent(jobId)}/${role}/${partyId}` }, `← job ${jobId}`)),
    h('h1', {}, `${taskName} (${t.component}) at ${role}:${partyId}`),
    h('div', { class: 'card', id: 'task-summary' }, h('table', { class: 'kv' },
      h('tr', {}, h('th', {}, 'Status'), h('td', {}, status(t.status), t.error ? h('div', { class: 'error' }, t.error) : null)),
      h('tr', {}, h('th', {}, 'Started · elapsed'), h('td', {}, time(t.start_time), ' · ', duration(t.elapsed))),
      h('tr', {}, h('th', {}, 'Version'), h('td', {}, t.task_version)))),
    h('div', { class: 'card', id: 'task-parameters' }, h('h2', {}, 'Parameters'), kvTable(t.component_parameters || t.parameters)));
  const [metrics, models, data, transcript] = await Promise.all([
    api.get('/v2/output/metric/query', q).catch(() => []),
    api.get('/v2/output/model/query', q).catch(() => ({})),
    api.get('/v2/output/data/display', q).catch(() => ({})),
    api.get('/v2/job/task/transcript', q).catch(() => null),
  ]);
  const inputs = [...new Set(metrics.map((m) => (m.data && m.data.input) || ''))];
  const mviews = [scalarsView(metrics), prView(metrics)];
  metrics.forEach((m) => {
    const i = inputs.indexOf((m.data && m.data.input) || '');
    mviews.push(metricView(m, i > 0 ? `-${i}` : ''));
  });
  const shown = mviews.filter(Boolean);
  view.append(h('h2', {}, 'Metrics'), shown.length ? h('div', { class: 'grid2', id: 'metrics' }, shown) : h('p', { class: 'muted' }, 'No metrics.'));
  const mv = modelsView(models);
  view.append(h('h2', {}, 'Models'), mv.length ? h('div', { id: 'models' }, mv) : h('p', { class: 'muted' }, 'No model output.'));
  const dv = dataView(data);
  view.append(h('h2', {}, 'Output data'), dv.length ? h('div', { id: 'outputs' }, dv) : h('p', { class: 'muted' }, 'No data output.'));
  view.append(h('h2', {}, 'Protocol transcript'), transcriptView(transcript, role, partyId));
  return null;
}

const bytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** What this party sent and received in the task: one row per peer, name and tag pattern. */
function transcriptView(rows, role, partyId) {
  if (!rows) return h('p', { class: 'muted' }, 'No transcript for this task at this party.');
  if (!rows.length) return h('p', { class: 'muted', id: 'transcript' }, `${role}:${partyId} sent and received nothing in this task.`);
  const recv = rows.filter((r) => r.direction === 'received');
  const total = (rs) => rs.reduce((a, r) => a + r.bytes, 0);
  return h('div', { class: 'card' },
    h('p', { class: 'muted' }, `What ${role}:${partyId} received (${bytes(total(recv))}) and sent (${bytes(total(rows) - total(recv))}): message names, tags (numbers as *), counts and sizes; never the payloads.`),
    h('table', { id: 'transcript' },
      h('tr', {}, ['', 'peer', 'name', 'tag', 'messages', 'frames', 'bytes'].map((c) => h('th', {}, c))),
      rows.map((r) => h('tr', { 'data-direction': r.direction, 'data-peer': r.peer, 'data-name': r.name, 'data-bytes': r.bytes },
        h('td', {}, r.direction === 'received' ? '← received from' : '→ sent to'),
        h('td', { class: 'mono' }, r.peer), h('td', { class: 'mono' }, r.name), h('td', { class: 'mono' }, r.tag),
        h('td', {}, r.messages), h('td', {}, r.frames), h('td', {}, bytes(r.bytes))))));
}
