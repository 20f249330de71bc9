// Running jobs, history and a job's dashboard.
import * as api from './api.js';
import { dagChart } from './charts.js';

export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

export const status = (s) => h('span', { class: `status status-${s}`, 'data-status': s }, s);
export const progress = (p) => h('span', { class: 'progress', title: `${p}%` }, h('span', { style: `width:${Math.max(0, Math.min(100, p))}%` }));
export const time = (ms) => (ms ? new Date(ms).toLocaleString() : '');
export function duration(ms) {
  if (ms === null || ms === undefined) return '';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
const jobLink = (j) => h('a', { href: `#/job/${encodeURIComponent(j.job_id)}/${j.role}/${j.party_id}`, class: 'job-link' }, j.job_id);
const ENDED = ['success', 'failed', 'canceled', 'timeout'];

function jobActions(j, after) {
  const out = [];
  const act = (label, path, cls) => h('button', {
    class: cls, 'data-action': label.toLowerCase(),
    onclick: async (ev) => {
      ev.target.disabled = true;
      try { await api.post(path, { job_id: j.job_id }); } catch (e) { alert(`${label} ${j.job_id}: ${e.message}`); }
      after();
    },
  }, label);
  if (!ENDED.includes(j.status)) out.push(act('Stop', '/v2/job/stop', 'danger'));
  if (['failed', 'canceled', 'timeout'].includes(j.status)) out.push(act('Rerun', '/v2/job/rerun'));
  return out;
}

/** Running and waiting jobs with their progress, refreshed every 2 s. */
export async function running(view) {
  view.append(h('h1', {}, 'Running jobs'));
  const box = h('div', { class: 'card', id: 'running' });
  view.append(box);
  let live = true;
  const draw = async () => {
    const [r, w] = await Promise.all([
      api.get('/v2/job/list/query', { status: 'running', limit: 100 }),
      api.get('/v2/job/list/query', { status: 'waiting', limit: 100 }),
    ]);
    const jobs = [...r.data, ...w.data];
    if (!live) return;
    box.replaceChildren(jobs.length
      ? h('table', { id: 'running-jobs' },
        h('tr', {}, ['Job', 'Role', 'Party', 'Status', 'Progress', 'Started', 'Running for', ''].map((c) => h('th', {}, c))),
        jobs.map((j) => h('tr', { 'data-job': j.job_id },
          h('td', {}, jobLink(j)), h('td', {}, j.role), h('td', {}, j.party_id), h('td', {}, status(j.status)),
          h('td', {}, progress(j.progress), ` ${j.progress}%`), h('td', {}, time(j.start_time)),
          h('td', {}, j.start_time ? duration(Date.now() - j.start_time) : ''), h('td', {}, jobActions(j, draw)))))
      : h('p', { class: 'muted' }, 'No job is running or waiting. ', h('a', { href: '#/history' }, 'See the history.')));
  };
  await draw();
  const timer = setInterval(() => draw().catch(() => {}), 2000);
  return () => { live = false; clearInterval(timer); };
}

const PAGE = 20;

/** History: filters (job id, role, party, status, notes), paging by the server, stop, rerun. */
export async function history(view, params) {
  view.append(h('h1', {}, 'Job history'));
  const field = (name, label, input) => h('label', {}, label, input || h('input', { name, value: params[name] || '', size: 14 }));
  const sel = (name, options) => {
    const s = h('select', { name }, h('option', { value: '' }, 'any'), options.map((o) => h('option', { value: o }, o)));
    s.value = params[name] || '';
    return s;
  };
  const form = h('form', { class: 'filters', id: 'history-filters' },
    field('job_id', 'Job id'),
    field('role', 'Role', sel('role', ['guest', 'host', 'arbiter', 'local'])),
    field('party_id', 'Party id'),
    field('status', 'Status', sel('status', ['waiting', 'running', 'success', 'failed', 'canceled', 'timeout'])),
    field('description', 'Notes'),
    h('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = `#/history?${q}`;
  });
  view.append(form);
  const page = Math.max(1, parseInt(params.page || '1', 10));
  const box = h('div', { class: 'card' });
  view.append(box);
  const draw = async () => {
    const t0 = performance.now();
    const r = await api.get('/v2/job/list/query', { ...params, page, limit: PAGE });
    const pages = Math.max(1, Math.ceil(r.count / PAGE));
    const go = (p) => { const q = new URLSearchParams({ ...params, page: p }); location.hash = `#/history?${q}`; };
    const notes = (j) => {
      const input = h('input', { value: j.description || '', size: 16, class: 'notes', 'aria-label': 'notes' });
      const save = h('button', {
        onclick: async () => {
          try { await api.post('/v2/job/notes/add', { job_id: j.job_id, role: j.role, party_id: j.party_id, notes: input.value }); save.textContent = 'Saved'; } catch (e) { alert(e.message); }
        },
      }, 'Save');
      return [input, ' ', save];
    };
    box.replaceChildren(
      h('table', { id: 'history-jobs', 'data-count': r.count },
        h('tr', {}, ['Job', 'Role', 'Party', 'Partners', 'Status', 'Progress', 'Started', 'Elapsed', 'Notes', ''].map((c) => h('th', {}, c))),
        r.data.map((j) => h('tr', { 'data-job': j.job_id, 'data-role': j.role, 'data-party': j.party_id },
          h('td', {}, jobLink(j)), h('td', {}, j.role), h('td', {}, j.party_id), h('td', {}, (j.partners || []).join(', ')),
          h('td', {}, status(j.status)), h('td', {}, progress(j.progress)), h('td', {}, time(j.start_time || j.create_time)),
          h('td', {}, duration(j.elapsed)), h('td', {}, notes(j)), h('td', {}, jobActions(j, draw))))),
      h('div', { class: 'pager' },
        h('button', { disabled: page <= 1 ? 'disabled' : null, onclick: () => go(page - 1), id: 'prev' }, '‹ Previous'),
        h('span', { id: 'page-info' }, `page ${page} of ${pages} · ${r.count} job rows`),
        h('button', { disabled: page >= pages ? 'disabled' : null, onclick: () => go(page + 1), id: 'next' }, 'Next ›'),
        h('span', { class: 'muted', id: 'render-ms' }, `${Math.round(performance.now() - t0)} ms`)));
  };
  await draw();
  return null;
}

/** The parties of a job from its DAG's `parties` list: [{role, party_id}]. */
export function partiesOf(job) {
  const out = [];
  for (const p of job.parties || []) for (const id of p.party_id || []) out.push({ role: p.role, party_id: String(id) });
  return out;
}

/** A job's dashboard: its row, progress, the DAG with task states, every party's tasks, logs. */
export async function dashboard(view, jobId, role, partyId) {
  const rows = await api.get('/v2/job/query', { job_id: jobId });
  let job = rows.find((j) => j.role === role && j.party_id === partyId) || rows[0];
  role = job.role; partyId = job.party_id;
  const head = h('div', { class: 'card', id: 'job-summary' });
  const dagBox = h('div', { class: 'card', id: 'dag' });
  const tasksBox = h('div', { class: 'card', id: 'party-tasks' });
  const logBox = h('div', { class: 'card', id: 'log-panel' });
  view.append(h('h1', {}, `Job ${jobId}`), head, h('div', { class: 'grid2' }, dagBox, tasksBox), logBox);
  const dep = await api.get('/v2/job/dag/dependency', { job_id: jobId, role, party_id: partyId });
  const edges = [];
  for (const [name, ups] of Object.entries(dep.dependencies || {})) {
    for (const u of ups) if (u.component_name) edges.push([u.component_name, name]);
  }
  const openTask = (name) => { location.hash = `#/task/${encodeURIComponent(jobId)}/${role}/${partyId}/${encodeURIComponent(name)}`; };

  const drawHead = () => {
    head.replaceChildren(
      h('table', { class: 'kv' },
        h('tr', {}, h('th', {}, 'Status'), h('td', { id: 'job-status' }, status(job.status), job.error ? h('div', { class: 'error' }, job.error) : null)),
        h('tr', {}, h('th', {}, 'Progress'), h('td', {}, progress(job.progress), ` ${job.progress}%`)),
        h('tr', {}, h('th', {}, 'Viewed as'), h('td', {}, rows.map((r) => [h('a', { href: `#/job/${encodeURIComponent(jobId)}/${r.role}/${r.party_id}`, class: r.role === role && r.party_id === partyId ? 'mono active' : 'mono' }, `${r.role}:${r.party_id}`), ' ']))),
        h('tr', {}, h('th', {}, 'Initiator'), h('td', {}, job.initiator_party_id)),
        h('tr', {}, h('th', {}, 'Model'), h('td', { class: 'mono' }, `${job.model_id} / ${job.model_version}`)),
        h('tr', {}, h('th', {}, 'Started · elapsed'), h('td', {}, time(job.start_time), ' · ', duration(job.elapsed ?? (job.start_time ? Date.now() - job.start_time : null)))),
        h('tr', {}, h('th', {}, 'Notes'), h('td', {}, job.description || '')),
        h('tr', {}, h('th', {}, ''), h('td', {}, jobActions(job, refresh)))));
  };
  let tasks = [];
  const latest = (list) => {
    const by = {};
    for (const t of list) {
      const k = `${t.task_name}|${t.role}|${t.party_id}`;
      if (!by[k] || by[k].task_version < t.task_version) by[k] = t;
    }
    return Object.values(by);
  };
  const drawTasks = () => {
    const mine = Object.fromEntries(tasks.filter((t) => t.role === role && t.party_id === partyId).map((t) => [t.task_name, t]));
    const nodes = dep.component_list.map((name) => ({
      name, component: dep.component_module[name], state: mine[name] ? mine[name].status : 'waiting', detail: mine[name] && mine[name].error,
    }));
    dagBox.replaceChildren(h('h2', {}, `DAG at ${role}:${partyId}`), dagChart(nodes, edges, openTask));
    tasksBox.replaceChildren(h('h2', {}, 'Every party\'s tasks (failed first)'),
      h('div', { class: 'scroll' }, h('table', { id: 'task-table' },
        h('tr', {}, ['Task', 'Role', 'Party', 'Status', 'Elapsed', 'Error'].map((c) => h('th', {}, c))),
        tasks.sort((a, b) => (b.status === 'failed') - (a.status === 'failed') || a.task_name.localeCompare(b.task_name) || a.role.localeCompare(b.role)).map((t) => h('tr', { 'data-task': t.task_name, 'data-role': t.role, 'data-party': t.party_id },
          h('td', {}, h('a', { href: `#/task/${encodeURIComponent(jobId)}/${t.role}/${t.party_id}/${encodeURIComponent(t.task_name)}` }, t.task_name)),
          h('td', {}, t.role), h('td', {}, t.party_id), h('td', {}, status(t.status)), h('td', {}, duration(t.elapsed)),
          h('td', { class: 'error' }, t.error || ''))))));
  };
  async function refresh() {
    const [jr, tl] = await Promise.all([
      api.get('/v2/job/query', { job_id: jobId, role, party_id: partyId }),
      api.get('/v2/job/task/list/query', { job_id: jobId, limit: 1000 }),
    ]);
    job = jr[0] || job;
    tasks = latest(tl.data);
    drawHead();
    drawTasks();
  }
  await refresh();

  // Logs: one party and one task (or all), polled every second while the job runs.
  const parties = partiesOf(job);
  const partySel = h('select', { id: 'log-party' }, parties.map((p) => h('option', { value: `${p.role}:${p.party_id}` }, `${p.role}:${p.party_id}`)));
  partySel.value = `${role}:${partyId}`;
  const taskSel = h('select', { id: 'log-task' }, h('option', { value: '' }, 'all tasks'), dep.component_list.map((n) => h('option', { value: n }, n)));
  const pre = h('pre', { class: 'logs', id: 'logs', 'data-lines': 0 });
  const count = h('span', { class: 'muted', id: 'log-count' });
  logBox.append(h('h2', {}, 'Logs'), h('div', { class: 'filters' }, 'Party ', partySel, ' Task ', taskSel, ' ', count), pre);
  let next = 0;
  let generation = 0;
  const reset = () => { generation += 1; next = 0; pre.replaceChildren(); pre.dataset.lines = 0; };
  partySel.addEventListener('change', () => { reset(); pollLogs(); });
  taskSel.addEventListener('change', () => { reset(); pollLogs(); });
  async function pollLogs() {
    const gen = generation;
    const [r, p] = partySel.value.split(':');
    const lines = await api.get('/v2/log/query', { job_id: jobId, role: r, party_id: p, task_name: taskSel.value, begin: next });
    if (gen !== generation) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    for (const l of lines) {
      const cls = l.content.startsWith('[ERROR]') ? 'err' : l.content.startsWith('[WARNING]') ? 'warn' : null;
      pre.append(h('span', { class: cls }, `${l.task_name} ${l.content}\n`));
      next = Math.max(next, l.line_num + 1);
    }
    pre.dataset.lines = next;
    count.textContent = `${next} lines${ENDED.includes(job.status) ? '' : ' · live'}`;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
  await pollLogs();
  let live = true;
  const timer = setInterval(async () => {
    if (!live) return;
    const wasRunning = !ENDED.includes(job.status);
    try {
      if (wasRunning) await refresh();
      if (wasRunning || !ENDED.includes(job.status)) await pollLogs();
    } catch (e) { /* the next tick tries again */ }
  }, 1000);
  return () => { live = false; clearInterval(timer); };
}
