// The mmkit web page: talks to the JSON API of the server that served it.
'use strict';
const $ = (id) => document.getElementById(id);
let health = null;
let imageB64 = null;  // the picked image, base64 without the data: prefix

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
}

async function api(path, body) {
  const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json().catch(() => ({ error: { message: 'HTTP ' + r.status } }));
  if (!r.ok) throw new Error((j.error && j.error.message) || 'HTTP ' + r.status);
  return j;
}

function updateButtons() {
  const h = health || { clip: {} };
  const text = !!h.clip.text, index = !!h.index;
  $('zs-run').disabled = !imageB64 || !text;
  $('zs-note').hidden = text;
  $('zs-note').textContent = text ? '' : 'Zero-shot needs the text tower: this server has no tokenizer loaded.';
  $('similar').disabled = !imageB64 || !index;
  $('caption-controls').hidden = !h.caption;
  $('caption-run').disabled = !imageB64 || !h.caption;
  $('vqa-row').hidden = !h.vqa;
  $('vqa-run').disabled = !imageB64 || !h.vqa;
  $('search-run').disabled = !text || !index;
  const why = !index ? 'No index loaded (start the server with --index).'
    : !text ? 'Text search needs a tokenizer; use "Find similar images" instead.' : '';
  if (why) $('search-note').textContent = why;  // otherwise it keeps the last search's summary
}

async function loadHealth() {
  try {
    const r = await fetch('/healthz');
    health = await r.json();
    const c = health.clip;
    $('status').textContent = `${c.model} · ${c.embed_dim}-d · text ${c.text ? 'on' : 'off'} · ` +
      (health.index ? `${health.index.size} images indexed` : 'no index') +
      (health.vqa ? ` · VQA ${health.vqa.model}` : '') + (health.caption ? ` · captions ${health.caption.model}` : '');
    const beams = health.limits && health.limits.max_beam ? health.limits.max_beam : 1;
    $('beam').innerHTML = '';
    for (let b = 1; b <= beams; b++) $('beam').add(new Option(b === 1 ? '1 (greedy)' : String(b), String(b)));
    $('beam').value = String(Math.min(3, beams));
  } catch (e) {
    $('status').textContent = 'server unreachable';
  }
  updateButtons();
}

function setImage(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const url = reader.result;
    imageB64 = url.slice(url.indexOf(',') + 1);
    $('preview').src = url;
    $('preview').hidden = false;
    $('drop-hint').hidden = true;
    $('zs-result').innerHTML = '';
    $('caption-result').textContent = '';
    $('vqa-result').textContent = '';
    $('vqa-top').innerHTML = '';
    updateButtons();
    document.body.dataset.image = 'loaded';
  };
  reader.readAsDataURL(file);
}

function renderBars(labels, probs, best, box = $('zs-result')) {
  box.innerHTML = '';
  labels.forEach((l, i) => {
    const row = document.createElement('div');
    row.className = 'bar' + (i === best ? ' best' : '');
    row.innerHTML = '<span class="l"></span><span class="track"><span class="fill"></span></span><span class="p"></span>';
    row.querySelector('.l').textContent = l;
    row.querySelector('.fill').style.width = (100 * probs[i]).toFixed(1) + '%';
    row.querySelector('.p').textContent = (100 * probs[i]).toFixed(1) + '%';
    box.appendChild(row);
  });
}

function renderGrid(res, what) {
  const g = $('grid');
  g.innerHTML = '';
  for (const r of res.results) {
    const f = document.createElement('figure');
    f.innerHTML = '<img alt=""><figcaption></figcaption>';
    f.querySelector('img').src = r.thumb;
    f.querySelector('img').alt = r.name;
    f.querySelector('figcaption').textContent = `${r.name} · ${r.score.toFixed(3)}`;
    f.dataset.score = r.score;
    f.dataset.name = r.name;
    g.appendChild(f);
  }
  $('search-note').textContent = `${res.results.length} results for ${what} in ${res.took_ms.toFixed(1)} ms`;
}

async function run(button, fn) {
  showError('');
  $(button).disabled = true;
  try { await fn(); } catch (e) { showError(e.message); } finally { updateButtons(); }
}

$('file').addEventListener('change', (e) => setImage(e.target.files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); setImage(e.dataTransfer.files[0]); });

$('zs-run').addEventListener('click', () => run('zs-run', async () => {
  const labels = $('labels').value.split(',').map((s) => s.trim()).filter(Boolean);
  const r = await api('/v1/zero-shot', { image: imageB64, labels });
  renderBars(r.labels, r.probs, r.best);
  if (r.probabilities === 'sigmoid') {  // SigLIP: one sigmoid per label, not shares of 100%
    const note = document.createElement('div');
    note.className = 'note';
    note.textContent = 'SigLIP: each label\'s probability on its own (sigmoid); they need not sum to 100%.';
    $('zs-result').appendChild(note);
  }
}));
$('similar').addEventListener('click', () => run('similar', async () => {
  renderGrid(await api('/v1/search', { image: imageB64, top_k: 12 }), 'the image');
}));
$('search-run').addEventListener('click', () => run('search-run', async () => {
  const q = $('query').value.trim();
  if (!q) throw new Error('type a query first');
  renderGrid(await api('/v1/search', { text: q, top_k: 12 }), `"${q}"`);
}));
$('query').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !$('search-run').disabled) $('search-run').click(); });
$('caption-run').addEventListener('click', () => run('caption-run', async () => {
  $('caption-result').textContent = '';
  const r = await api('/v1/caption', { image: imageB64, beam: parseInt($('beam').value || '1', 10) });
  $('caption-result').textContent = r.caption;
  $('caption-result').title = `beam ${r.beam} · log P ${r.log_prob.toFixed(3)}` + (r.finished ? '' : ' · cut at max_tokens');
}));
$('vqa-run').addEventListener('click', () => run('vqa-run', async () => {
  $('vqa-result').textContent = '';
  $('vqa-top').innerHTML = '';
  const q = $('question').value.trim();
  if (!q) throw new Error('type a question first');
  const r = await api('/v1/vqa', { image: imageB64, question: q, top_k: 5 });
  $('vqa-result').textContent = `${r.answer} (${(100 * r.probability).toFixed(1)}%)`;
  $('vqa-result').dataset.answer = r.answer;
  renderBars(r.top.map((t) => t.answer), r.top.map((t) => t.probability), 0, $('vqa-top'));
}));
$('question').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !$('vqa-run').disabled) $('vqa-run').click(); });

loadHealth();
