"""The example's two HTML pages (plain strings: the example has no template engine)."""

INDEX_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>claude_rbac - Django example</title>
<style>body{font:16px system-ui;max-width:42rem;margin:2rem auto}textarea{width:100%}pre{white-space:pre-wrap}</style>
</head><body>
<h1>claude_rbac &middot; Django</h1>
<p>Demo users (Django users, by group): {{users}}. Each group grants the role <code>GROUP_ROLES</code> maps it to;
the session holds the user's id, never a role. The demo users have no passwords: you sign in by name.</p>
<form id="login"><select name="username">
<option>vera</option><option>uma</option><option>paul</option><option>ada</option></select>
<button>Sign in</button> <button type="button" id="logout">Sign out</button></form>
<p id="me"></p>
<form id="chat"><textarea name="prompt" rows="3">Say hello.</textarea>
<select name="model"><option>claude-haiku-4-5</option><option>claude-sonnet-4-6</option>
<option>claude-opus-4-7</option></select> <button>Ask Claude</button></form>
<pre id="answer"></pre>
<p><a href="/admin">Admin page</a> (admins only)</p>
<script>
const post = (url, body) => fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
  body: JSON.stringify(body || {})}).then(r => r.json());
const me = () => fetch("/api/me").then(r => r.json()).then(m => {
  const day = (m.spend || []).find(w => w.scope === "principal" && w.period === "day");
  const left = day ? `; dollars left today: $${day.remaining} of $${day.limit}` : "";
  document.getElementById("me").textContent = m.user ? `Signed in as ${m.user} (${m.role})${left}` : "Not signed in";
});
document.getElementById("login").onsubmit = e => {
  e.preventDefault(); post("/login", {username: e.target.username.value}).then(me);
};
document.getElementById("logout").onclick = () => post("/logout").then(me);
document.getElementById("chat").onsubmit = e => {
  e.preventDefault();
  post("/api/chat", {prompt: e.target.prompt.value, model: e.target.model.value}).then(r => {
    document.getElementById("answer").textContent = r.text || `${r.error.type}: ${r.error.message}`;
  });
};
me();
</script></body></html>
"""

ADMIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>claude_rbac - admin</title>
<style>body{font:15px system-ui;max-width:46rem;margin:2rem auto}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left}.num{text-align:right}</style></head><body>
{{spend}}
<h1>Roles</h1>
<table><tr><th>role</th><th>models</th><th>max_tokens</th><th>rpm</th></tr>{{rows}}</table>
<p><a href="/">Back</a></p>
</body></html>
"""
