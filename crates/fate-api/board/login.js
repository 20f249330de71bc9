// The login form: POST /board/login as JSON; the node answers with the session cookie.
const form = document.getElementById('login');
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = document.getElementById('login-error');
  err.textContent = '';
  try {
    const r = await fetch('/board/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ user: form.user.value, password: form.password.value }),
    });
    const v = await r.json();
    if (r.ok && v.code === 0) {
      location.href = '/board/' + (location.hash || '#/running');
    } else {
      err.textContent = v.message || ('login failed: HTTP ' + r.status);
    }
  } catch (e) {
    err.textContent = 'cannot reach the node: ' + e;
  }
});
