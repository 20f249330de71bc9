// The board's requests: FATE-Flow's REST API (the same one FATE's client uses), authenticated
// by the session cookie; state-changing requests carry the session's CSRF token.
let csrf = '';

function toLogin() {
  location.href = '/board/login' + location.hash;
}

async function answer(r, path) {
  if (r.status === 401) {
    toLogin();
    throw new Error('not logged in');
  }
  let v;
  try {
    v = await r.json();
  } catch (e) {
    throw new Error(`${path}: HTTP ${r.status}, not JSON`);
  }
  return v;
}

/** GET path?params; resolves to the envelope's data, rejects with its message. */
export async function get(path, params = {}) {
  const v = await getEnvelope(path, params);
  if (v.code !== 0) throw new Error(v.message || `${path}: code ${v.code}`);
  return v.data;
}

/** GET path?params; resolves to the whole envelope `{code, message, data}`. */
export async function getEnvelope(path, params = {}) {
  const qs = new URLSearchParams();
  for (const [k, val] of Object.entries(params)) {
    if (val !== undefined && val !== null && val !== '') qs.set(k, val);
  }
  const url = qs.toString() ? `${path}?${qs}` : path;
  const r = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  return answer(r, path);
}

/** POST a JSON body; resolves to the envelope's data. */
export async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Fate-Csrf': csrf },
    body: JSON.stringify(body),
  });
  const v = await answer(r, path);
  if (v.code !== 0) throw new Error(v.message || `${path}: code ${v.code}`);
  return v.data;
}

/** The logged-in session: `{user, csrf, expires_ms, party_ids, client_auth}`. */
export async function session() {
  const s = await get('/board/api/session');
  csrf = s.csrf;
  return s;
}

export async function logout() {
  await post('/board/logout', {});
  toLogin();
}
