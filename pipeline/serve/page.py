"""The page at ``/``: pick a served model, type texts (one per line; a tab between the two texts
of a pair), see each prediction in a table. Plain HTML and JavaScript, no outside resources."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>elmo-pipeline serve</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
 textarea { width: 100%; height: 8rem; font: inherit; }
 table { border-collapse: collapse; margin-top: 1rem; width: 100%; }
 td, th { border: 1px solid #ccc; padding: .3rem .5rem; text-align: left; vertical-align: top; }
 #error { color: #a00; }
</style>
</head>
<body>
<h1>elmo-pipeline serve</h1>
<p><label>Model <select id="model"></select></label> <span id="about"></span></p>
<textarea id="texts" placeholder="one text per line (a pair: two texts separated by a tab)"></textarea>
<p><button id="run">Run</button> <span id="error" role="alert"></span></p>
<table id="results"><thead><tr><th>#</th><th>text</th><th>result</th></tr></thead><tbody></tbody></table>
<script>
let models = {};
const $ = (id) => document.getElementById(id);
function cell(row, text) { const td = row.insertCell(); td.textContent = text; }
function show(record) {
  if (record.label !== undefined) {
    const p = record.probabilities || {};
    return record.label + "  (" + Object.entries(p).map(([k, v]) => k + " " + v.toFixed(3)).join(", ") + ")";
  }
  if (record.labels !== undefined) return record.labels.join(", ") || "(none)";
  if (record.score !== undefined) return String(record.score);
  if (record.tags !== undefined) return record.tokens.map((t, i) => t + "/" + record.tags[i]).join(" ");
  return JSON.stringify(record);
}
function shape(a) { const s = []; while (Array.isArray(a)) { s.push(a.length); a = a[0]; } return s; }
async function load() {
  const meta = await (await fetch("metadata")).json();
  for (const m of meta.models) {
    models[m.name] = m;
    const o = document.createElement("option"); o.value = m.name; o.textContent = m.name + " (" + m.kind + ")";
    $("model").appendChild(o);
  }
  about();
}
function about() {
  const m = models[$("model").value];
  $("about").textContent = m.task ? m.task + ", " + m.labels.length + " labels" : m.layers + " layers of " + m.dim;
}
async function run() {
  $("error").textContent = "";
  const m = models[$("model").value];
  const lines = $("texts").value.split("\\n").filter((l) => l.trim());
  const body = { model: m.name };
  if (m.pairs) body.pairs = lines.map((l) => l.split("\\t")); else body.texts = lines;
  if (m.kind === "encoder") body.pool = "mean";
  const r = await fetch(m.route.slice(1), { method: "POST", headers: { "Content-Type": "application/json" },
                                             body: JSON.stringify(body) });
  const answer = await r.json();
  const tbody = $("results").tBodies[0]; tbody.innerHTML = "";
  if (!r.ok) { $("error").textContent = answer.error; return; }
  const results = answer.predictions || answer.embeddings;
  results.forEach((res, i) => {
    const row = tbody.insertRow(); cell(row, String(i + 1)); cell(row, lines[i]);
    cell(row, answer.predictions ? show(res) : "vector " + shape(res).join(" x ") + ": " +
         res.flat().slice(0, 4).map((x) => x.toFixed(3)).join(", ") + ", ...");
  });
}
$("model").addEventListener("change", about);
$("run").addEventListener("click", run);
load();
</script>
</body>
</html>
"""
