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

async function api(path, body, method = 'POST') {
  const init = { method, headers: { 'Content-Type': 'application/json' } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  const j = await r.json().catch(() => ({ error: { message: 'HTTP ' + r.status } }));
  if (!r.ok) throw new Error((j.error && j.error.message) || 'HTTP ' + r.status);
  return j;
}

function updateButtons() {
  const h = health || { clip: {} };
  const live = !!h.live_index;
  const text = !!h.clip.text, index = !!h.index || live;
  $('zs-run').disabled = !imageB64 || !text;
  $('zs-note').hidden = text;
  $('zs-note').textContent = text ? '' : 'Zero-shot needs the text tower: this server has no tokenizer loaded.';
  $('similar').disabled = !imageB64 || !index;
  $('caption-controls').hidden = !h.caption;
  $('caption-run').disabled = !imageB64 || !h.caption;
  $('vqa-row').hidden = !h.vqa;
  $('vqa-run').disabled = !imageB64 || !h.vqa;
  $('search-run').disabled = !text || !index;
  $('live-add').hidden = !live;
  $('filter-row').hidden = !live;
  $('add-run').disabled = !imageB64 || !live;
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
      (health.live_index ? ` · live index ${health.live_index.size} items` : '') +
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
    const name = r.name || r.id;  // the live index's results have ids and metadata
    if (r.thumb) f.querySelector('img').src = r.thumb;
    f.querySelector('img').alt = name;
    f.querySelector('figcaption').textContent = `${name} · ${r.score.toFixed(3)}`;
    if (r.metadata) f.title = JSON.stringify(r.metadata);
    f.dataset.score = r.score;
    f.dataset.name = name;
    if (r.metadata) {
      const rm = document.createElement('button');
      rm.className = 'remove';
      rm.textContent = '×';
      rm.title = `remove ${r.id} from the live index`;
      rm.addEventListener('click', () => run('search-run', async () => {
        await api('/v1/index/items/' + encodeURIComponent(r.id), undefined, 'DELETE');
        f.remove();
        $('search-note').textContent = `removed ${r.id}`;
        await loadHealth();
      }));
      f.appendChild(rm);
    }
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
// A search: the live index (with its filter and score threshold) when the server has one, else the built index.
async function search(query, what) {
  if (!(health && health.live_index)) return renderGrid(await api('/v1/search', { ...query, top_k: 12 }), what);
  const body = { ...query, top_k: 12 };
  const f = $('filter').value.trim();
  if (f) {
    try { body.filter = JSON.parse(f); } catch (e) { throw new Error('the filter is not JSON: ' + e.message); }
  }
  const m = $('min-score').value.trim();
  if (m) body.min_score = Number(m);
  renderGrid(await api('/v1/index/search', body), what + (f ? ` where ${f}` : ''));
}
$('similar').addEventListener('click', () => run('similar', async () => { await search({ image: imageB64 }, 'the image'); }));
$('search-run').addEventListener('click', () => run('search-run', async () => {
  const q = $('query').value.trim();
  if (!q) throw new Error('type a query first');
  await search({ text: q }, `"${q}"`);
}));
$('filter').addEventListener('keydown', (e) => { if (e.key === 'Enter' && !$('search-run').disabled) $('search-run').click(); });
$('add-run').addEventListener('click', () => run('add-run', async () => {
  const id = $('item-id').value.trim();
  if (!id) throw new Error('give the image an id first');
  let metadata = {};
  const m = $('item-meta').value.trim();
  if (m) {
    try { metadata = JSON.parse(m); } catch (e) { throw new Error('the metadata is not JSON: ' + e.message); }
  }
  const r = await api('/v1/index/items', { id, image: imageB64, metadata });
  $('add-result').textContent = `added ${r.id} (${r.width}x${r.height})`;
  $('add-result').dataset.added = r.id;
  await loadHealth();
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
