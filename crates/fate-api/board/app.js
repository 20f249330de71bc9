// The board's single page: routes on the URL's hash (#/running, #/history?..., #/job/..,
// #/task/..), one view at a time.
import * as api from './api.js';
import { running, history, dashboard } from './views.js';
import { taskDetail } from './detail.js';

const view = document.getElementById('view');
let stopCurrent = null;

function parse() {
  const h = location.hash.replace(/^#\/?/, '') || 'running';
  const [path, query] = h.split('?');
  const parts = path.split('/').map(decodeURIComponent);
  return { parts, params: Object.fromEntries(new URLSearchParams(query || '')) };
}

async function route() {
  if (stopCurrent) { stopCurrent(); stopCurrent = null; }
  const { parts, params } = parse();
  view.replaceChildren();
  document.querySelectorAll('header nav a').forEach((a) => a.classList.toggle('active', a.id === `nav-${parts[0]}`));
  try {
    let stop;
    switch (parts[0]) {
      case 'history': stop = await history(view, params); break;
      case 'job': stop = await dashboard(view, parts[1], parts[2], parts[3], params); break;
      case 'task': stop = await taskDetail(view, parts[1], parts[2], parts[3], parts[4]); break;
      default: stop = await running(view); break;
    }
    stopCurrent = stop || null;
  } catch (e) {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = String(e.message || e);
    view.append(p);
  }
}

async function main() {
  const s = await api.session();
  document.getElementById('who').textContent = `${s.user} · parties ${s.party_ids.join(', ') || 'all (standalone)'}`;
  document.getElementById('logout').addEventListener('click', () => api.logout());
  window.addEventListener('hashchange', route);
  await route();
}

main();
