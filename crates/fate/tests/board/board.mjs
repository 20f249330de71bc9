// The board in a real browser: Debian's Chromium driven by playwright-core, against a node
// that ran breast PSI+CoordinatedLR and PSI+SecureBoost and has a third job running.
// Run by crates/fate/tests/cli.rs (`board` module), which passes, in the environment:
// FATE_BOARD_URL, FATE_BOARD_PASSWORD, FATE_BOARD_SHOTS (screenshot dir), FATE_BOARD_FACTS (a
// JSON file: {lr_job, sbt_job, running_job, failed_job, upload_job, lr_auc, sbt_auc,
// regression_job, regression_metrics}) and FATE_BOARD_NODE_MODULES.
// FATE_BOARD_SCENARIO=demo is the board of `fate demo` (facts {lr_job, sbt_job, lr_auc, sbt_auc}):
// every check but those of the running, failed and upload jobs and the notes, which it has not.
// Every check throws on failure; the process exits non-zero and prints why.
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(join(process.env.FATE_BOARD_NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');

const url = process.env.FATE_BOARD_URL.replace(/\/$/, '');
const password = process.env.FATE_BOARD_PASSWORD;
const shots = process.env.FATE_BOARD_SHOTS;
const facts = JSON.parse(readFileSync(process.env.FATE_BOARD_FACTS, 'utf8'));
const scenario = process.env.FATE_BOARD_SCENARIO || 'node';
if (!['node', 'demo'].includes(scenario)) throw new Error(`FATE_BOARD_SCENARIO: unknown ${scenario}`);
const full = scenario === 'node';
mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`board check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.FATE_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  // Without a login: pages go to the login page, the board's JSON and the API with a forged
  // cookie answer 401.
  let r = await fetch(`${url}/board/api/session`);
  check(r.status === 401, `cookie-less /board/api/session is 401 (got ${r.status})`);
  r = await fetch(`${url}/v2/job/list/query`, { headers: { cookie: `fate_board_session=${'ab'.repeat(32)}` } });
  check(r.status === 401, `a forged session cookie is 401 on the API (got ${r.status})`);
  await page.goto(`${url}/`);
  check(page.url().endsWith('/board/login'), `/ without a session shows the login page (${page.url()})`);
  await page.goto(`${url}/board/#/history`);
  check(page.url().includes('/board/login'), 'a page without a session shows the login page');
  await page.fill('#password', 'wrong');
  await page.click('#login-button');
  await page.waitForSelector('#login-error:not(:empty)');
  check((await page.textContent('#login-error')).includes('wrong'), 'a wrong password is refused with a message');
  await shot(page, '01-login');
  await page.fill('#password', password);
  await page.click('#login-button');
  await page.waitForSelector('#who:not(:empty)');
  check(page.url().includes('/board/'), 'logged in');

  if (full) {
  // Running: the running job is listed with its progress.
  await page.goto(`${url}/board/#/running`);
  await page.waitForSelector(`#running-jobs tr[data-job="${facts.running_job}"]`, { timeout: 30000 });
  check(true, `running view lists job ${facts.running_job}`);
  await shot(page, '02-running');

  // Dashboard of the running job: the logs grow while it runs.
  await page.goto(`${url}/board/#/job/${facts.running_job}/guest/9999`);
  await page.waitForSelector('#logs');
  const lines = async () => Number(await page.getAttribute('#logs', 'data-lines'));
  const jobStatus = () => page.getAttribute('#job-status .status', 'data-status');
  // The arbiter logs every epoch's loss.
  await page.selectOption('#log-party', 'arbiter:10000');
  await page.waitForFunction(() => Number(document.querySelector('#logs').dataset.lines) > 0);
  const first = await lines();
  check(['running', 'waiting'].includes(await jobStatus()), `the job runs while its logs are watched (${await jobStatus()})`);
  let grew = false;
  for (let i = 0; i < 120 && !grew; i++) {
    await page.waitForTimeout(500);
    grew = (await lines()) > first && (await jobStatus()) === 'running';
  }
  check(grew, `the arbiter's logs stream while the job runs (${first} -> ${await lines()} lines, status ${await jobStatus()})`);
  await shot(page, '03-dashboard-live');
  // Stop, from the dashboard (a cookie-authenticated POST with the CSRF token).
  page.once('dialog', (d) => d.dismiss());
  await page.click('#job-summary button[data-action=stop]');
  await page.waitForFunction(() => document.querySelector('#job-status .status')?.dataset.status === 'canceled', null, { timeout: 60000 });
  check(true, 'the Stop button cancels the running job');
  }

  // History: every job is listed; the job id filter finds one job.
  await page.goto(`${url}/board/#/history`);
  await page.waitForSelector('#history-jobs');
  const count = Number(await page.getAttribute('#history-jobs', 'data-count'));
  // The node's: LR, SecureBoost, the running and the failed job; the demo's: the toy, two
  // uploads, LR and SecureBoost.
  check(count >= (full ? 3 : 5), `history counts ${count} job rows`);
  await shot(page, '04-history');
  await page.fill('#history-filters input[name=job_id]', facts.lr_job);
  await page.click('#history-filters button[type=submit]');
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll('#history-jobs tr[data-job]')];
    return rows.length > 0 && rows.every((r) => r.dataset.job === id);
  }, facts.lr_job);
  check(true, 'the job id filter shows only that job');
  if (full) {
  // Notes: saved from the history (a cookie-authenticated POST), then found by the notes filter.
  await page.fill(`#history-jobs tr[data-job="${facts.lr_job}"][data-role=guest] input.notes`, 'board test notes');
  await page.click(`#history-jobs tr[data-job="${facts.lr_job}"][data-role=guest] button:has-text("Save")`);
  await page.waitForSelector(`#history-jobs tr[data-job="${facts.lr_job}"][data-role=guest] button:has-text("Saved")`);
  await page.goto(`${url}/board/#/history?description=${encodeURIComponent('test notes')}`);
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll('#history-jobs tr[data-job]')];
    return rows.length === 1 && rows[0].dataset.job === id && rows[0].dataset.role === 'guest';
  }, facts.lr_job);
  check(true, 'the notes filter finds the job whose notes were saved');
  }

  // Each finished job's dashboard: every task of the DAG drawn with its state.
  for (const [name, job] of [['lr', facts.lr_job], ['sbt', facts.sbt_job]]) {
    await page.goto(`${url}/board/#/job/${job}/guest/9999`);
    await page.waitForSelector('svg.dag .dag-node');
    const api = await page.evaluate(async (id) => {
      const dep = await (await fetch(`/v2/job/dag/dependency?job_id=${id}&role=guest&party_id=9999`)).json();
      const tasks = await (await fetch(`/v2/job/task/list/query?job_id=${id}&role=guest&party_id=9999&limit=100`)).json();
      return { names: dep.data.component_list, tasks: tasks.data.data };
    }, job);
    const drawn = await page.$$eval('svg.dag .dag-node', (gs) => gs.map((g) => [g.dataset.task, g.dataset.state]));
    const states = Object.fromEntries(drawn);
    for (const t of api.names) {
      const want = api.tasks.filter((x) => x.task_name === t).sort((a, b) => b.task_version - a.task_version)[0];
      check(states[t] === want.status, `${name} DAG shows ${t} as ${want.status} (drawn: ${states[t]})`);
    }
    check(drawn.length === api.names.length, `${name} DAG draws ${drawn.length} tasks, the job has ${api.names.length}`);
    // A finished job's logs: the host's lines are shown (SecureBoost has no arbiter).
    await page.selectOption('#log-party', 'host:10000');
    await page.waitForFunction(() => Number(document.querySelector('#logs').dataset.lines) > 0);
    check(true, `${name} dashboard shows the host's logs (${await page.getAttribute('#logs', 'data-lines')} lines)`);
    await shot(page, `05-dashboard-${name}`);
  }

  if (full) {
  // A failed job: the dashboard names the party whose task failed, with its error.
  await page.goto(`${url}/board/#/job/${facts.failed_job}/guest/9999`);
  await page.waitForSelector('#task-table');
  check((await page.getAttribute('#job-status .status', 'data-status')) === 'failed', 'the failed job shows as failed');
  const failedRow = `#task-table tr[data-task=reader_0][data-role=host][data-party="10000"]`;
  check((await page.getAttribute(`${failedRow} .status`, 'data-status')) === 'failed', 'the host\'s reader_0 shows as failed');
  const error = await page.textContent(`${failedRow} td.error`);
  check(error.includes('no_such_table'), `the host's error is shown: ${error}`);
  await shot(page, '10-dashboard-failed');
  }

  // Evaluation: the ROC curve has points and the AUC shown is the metric API's.
  for (const [name, job, auc] of [['lr', facts.lr_job, facts.lr_auc], ['sbt', facts.sbt_job, facts.sbt_auc]]) {
    await page.goto(`${url}/board/#/task/${job}/guest/9999/evaluation_0`);
    await page.waitForSelector('[data-metric="metric-auc"] path.series');
    const points = Number(await page.getAttribute('[data-metric="metric-auc"] path.series', 'data-points'));
    check(points > 10, `${name} ROC curve has ${points} points`);
    const shown = await page.textContent('[data-metric="metric-auc"] .auc-value');
    check(Math.abs(Number(shown) - auc) < 1e-5, `${name} AUC shown ${shown} equals the metric API's ${auc}`);
    await page.waitForSelector('[data-metric="metric-ks"] path.series');
    await shot(page, `06-evaluation-${name}`);
  }

  // CoordinatedLR: weights and intercept at the guest; the loss curve at the arbiter.
  await page.goto(`${url}/board/#/task/${facts.lr_job}/guest/9999/lr_0`);
  await page.waitForSelector('table.lr-weights');
  const weights = await page.$$eval('table.lr-weights tr[data-feature]', (rs) => rs.map((r) => r.dataset.feature));
  check(weights.length > 5 && weights.includes('intercept'), `LR weights table has ${weights.length} rows with the intercept`);
  // The protocol transcript: what the guest sent and received, per peer; the host's view of
  // the same messages agrees byte for byte.
  await page.waitForSelector('#transcript tr[data-direction]');
  const sent = await page.$$eval('#transcript tr[data-direction]', (rs) => rs.map((r) => ({ ...r.dataset, bytes: Number(r.dataset.bytes) })));
  check(sent.some((r) => r.direction === 'received' && r.peer === 'arbiter:10000' && r.bytes > 0), 'the guest\'s transcript shows what it received from the arbiter');
  const toHost = sent.filter((r) => r.direction === 'sent' && r.peer === 'host:10000');
  check(toHost.length > 0, `the guest's transcript shows ${toHost.length} kinds of message sent to the host`);
  const hostRows = await page.evaluate(async (id) => (await (await fetch(`/v2/job/task/transcript?job_id=${id}&role=host&party_id=10000&task_name=lr_0`)).json()).data, facts.lr_job);
  const fromGuest = hostRows.filter((r) => r.direction === 'received' && r.peer === 'guest:9999');
  const sum = (rs) => rs.reduce((a, r) => a + r.bytes, 0);
  check(sum(fromGuest) === sum(toHost) && sum(toHost) > 0, `the host received from the guest the ${sum(toHost)} bytes the guest sent it (${sum(fromGuest)})`);
  await shot(page, '07-lr-guest');
  await page.goto(`${url}/board/#/task/${facts.lr_job}/arbiter/10000/lr_0`);
  await page.waitForSelector('[data-metric="metric-lr_loss"] path.series');
  const loss = Number(await page.getAttribute('[data-metric="metric-lr_loss"] path.series', 'data-points'));
  check(loss > 1, `LR loss curve has ${loss} points`);
  await shot(page, '08-lr-arbiter-loss');

  // SecureBoost: feature importance bars and a tree.
  await page.goto(`${url}/board/#/task/${facts.sbt_job}/guest/9999/sbt_0`);
  await page.waitForSelector('svg.importance g.bar');
  const bars = await page.$$eval('svg.importance g.bar', (b) => b.length);
  check(bars > 0, `SecureBoost feature importance has ${bars} bars`);
  check((await page.$$('#sbt-tree svg .tree-node')).length > 1, 'a SecureBoost tree is drawn');
  await page.waitForSelector('table.data-preview');
  const rows = await page.$$eval('table.data-preview tr', (r) => r.length - 1);
  check(rows > 0 && rows <= 100, `output data preview shows ${rows} rows`);
  await shot(page, '09-sbt-guest');

  if (full) {
  // An upload's summary.
  await page.goto(`${url}/board/#/task/${facts.upload_job}/local/0/upload_0`);
  await page.waitForSelector('#upload-summary');
  const summary = await page.textContent('#upload-summary');
  check(summary.includes('569') && summary.includes('breast_hetero_host'), `the upload summary shows its table and rows: ${summary}`);
  await shot(page, '11-upload');

  // A regression's evaluation: its summary table shows each metric the metric API gives.
  await page.goto(`${url}/board/#/task/${facts.regression_job}/guest/9999/evaluation_0`);
  await page.waitForSelector('#scalar-metrics tr[data-name]');
  const shownMetrics = await page.$$eval('#scalar-metrics tr[data-name]', (rs) => Object.fromEntries(rs.map((r) => [r.dataset.name, Number(r.querySelector('td.num').dataset.value)])));
  for (const name of ['rmse', 'mse', 'mae', 'r2_score']) {
    const want = facts.regression_metrics[name];
    check(typeof want === 'number' && Math.abs(shownMetrics[name] - want) < 1e-12, `regression ${name} shown ${shownMetrics[name]} equals the metric API's ${want}`);
  }
  check(facts.regression_metrics.r2_score > 0.5, `the regression fits (r2 ${facts.regression_metrics.r2_score})`);
  await shot(page, '12-evaluation-regression');
  }

  check(errors.length === 0, `no script errors in the pages (${errors.join('; ')})`);
} finally {
  await browser.close();
}
