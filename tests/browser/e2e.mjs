// End-to-end test of the mmkit web page in a real browser: Debian's Chromium
// driven by playwright-core. Needs a running `mmkit serve --index ...`.
//
//   node e2e.mjs --url http://127.0.0.1:PORT --image some_indexed.png [--screenshot out.png]
//                [--question Q --expect-answer A] [--beam K --expect-caption C]
//
// Uploads the image, reads the zero-shot bars (or, when the server has no
// tokenizer, checks that the page disables zero-shot and text search and says
// why), asks a question with an unknown word (the page shows the server's
// error naming it) and then Q, reading the answer and its top-k bars (A: what
// `mmkit vqa` answered), presses Caption with beam K (C: what `mmkit caption`
// wrote), runs "find similar images" and checks the image itself comes back
// first, runs a text search when text is on, and saves a screenshot. With a live index
// (`mmkit serve --live-index`), first adds the uploaded image to it under two ids with
// different metadata, searches with filters (and a malformed one), refuses a duplicate id and
// removes an item from the results grid; "find similar" then searches the live index.
// Prints "N passed, M failed" and exits non-zero on any failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
}
const url = arg('url');
const image = arg('image');
const screenshot = arg('screenshot', '');
const labels = arg('labels', 'circle, square, stripe');
const query = arg('query', 'a red circle');
const question = arg('question', '');
const expectAnswer = arg('expect-answer', '');
const beam = arg('beam', '');
const expectCaption = arg('expect-caption', '');
if (!url || !image) {
  console.error('usage: node e2e.mjs --url URL --image FILE [--screenshot OUT.png]');
  process.exit(2);
}

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ' — ' + detail : ''}`);
}

const profile = mkdtempSync(join(tmpdir(), 'mmkit-chromium-'));
// A fresh profile directory (--user-data-dir) per run, through Playwright's persistent context.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 820 },
});
try {
  const page = browser.pages()[0] || await browser.newPage();
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(url)) external.push(r.url()); });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  await page.goto(url + '/');
  await page.waitForFunction(() => !document.getElementById('status').textContent.includes('connecting'));
  const health = await (await page.request.get(url + '/healthz')).json();
  const status = await page.textContent('#status');
  check('page shows the server status', status.includes(String(health.clip.embed_dim) + '-d'), status);
  check('index is loaded', !!health.index && status.includes(`${health.index.size} images indexed`), status);

  await page.setInputFiles('#file', image);
  await page.waitForSelector('#preview:not([hidden])');
  const natural = await page.$eval('#preview', (img) => img.naturalWidth);
  check('uploaded image is previewed', natural > 0, `naturalWidth ${natural}`);

  const text = !!health.clip.text;
  if (text) {
    await page.fill('#labels', labels);
    await page.click('#zs-run');
    await page.waitForSelector('#zs-result .bar');
    const rows = await page.$$eval('#zs-result .bar', (bs) => bs.map((b) => [b.querySelector('.l').textContent, parseFloat(b.querySelector('.p').textContent)]));
    const n = labels.split(',').filter((s) => s.trim()).length;
    const sum = rows.reduce((a, r) => a + r[1], 0);
    check('zero-shot draws one bar per label', rows.length === n, JSON.stringify(rows));
    check('zero-shot probabilities sum to 100%', Math.abs(sum - 100) < 0.5, `sum ${sum.toFixed(2)}`);
    // The bars are drawn: each fill's width is its probability of the track's.
    const drawn = await page.$$eval('#zs-result .bar', (bs) => bs.map((b) =>
      b.querySelector('.fill').getBoundingClientRect().width / b.querySelector('.track').getBoundingClientRect().width));
    check('bar lengths match the probabilities', drawn.every((w, i) => Math.abs(100 * w - rows[i][1]) < 1.5),
          JSON.stringify(drawn.map((w) => (100 * w).toFixed(1))));
  } else {
    check('zero-shot is disabled without a tokenizer', await page.isDisabled('#zs-run'));
    check('the page says why', (await page.textContent('#zs-note')).includes('tokenizer'));
    check('text search is disabled without a tokenizer', await page.isDisabled('#search-run'));
  }
  check('VQA controls hidden when no VQA model is loaded', !!health.vqa || await page.isHidden('#vqa-row'));
  check('caption button hidden when no caption model is loaded', !!health.caption || await page.isHidden('#caption-run'));
  const imageB64 = readFileSync(image).toString('base64');

  if (health.vqa && question) {
    check('VQA controls shown', await page.isVisible('#vqa-row') && await page.isEnabled('#vqa-run'));
    // A word the model never saw: the page shows the server's 400, naming the word.
    await page.fill('#question', 'what is the colour of the zebra');
    await page.click('#vqa-run');
    await page.waitForSelector('#error:not([hidden])');
    const err = await page.textContent('#error');
    check('an unknown word is named in the error', err.includes("unknown word 'colour'"), err);
    await page.fill('#question', question);
    await page.press('#question', 'Enter');
    await page.waitForFunction(() => !!document.getElementById('vqa-result').dataset.answer && document.getElementById('error').hidden);
    const shown = await page.$eval('#vqa-result', (e) => e.dataset.answer);
    const api = await (await page.request.post(url + '/v1/vqa', { data: { image: imageB64, question, top_k: 5 } })).json();
    check('the page shows the API\'s answer', shown === api.answer, `page "${shown}", API "${api.answer}"`);
    if (expectAnswer) check('the answer equals `mmkit vqa`', shown === expectAnswer, `page "${shown}", CLI "${expectAnswer}"`);
    const top = await page.$$eval('#vqa-top .bar', (bs) => bs.map((b) => [b.querySelector('.l').textContent, parseFloat(b.querySelector('.p').textContent)]));
    check('top answers drawn with their probabilities', top.length === api.top.length && top.every((t, i) =>
      t[0] === api.top[i].answer && Math.abs(t[1] - 100 * api.top[i].probability) < 0.06), JSON.stringify(top));
  } else {
    check('no VQA model: skipped asking', !health.vqa, 'pass --question to test VQA');
  }

  if (health.caption) {
    check('caption button shown', await page.isVisible('#caption-run') && await page.isEnabled('#caption-run'));
    if (beam) await page.selectOption('#beam', beam);
    await page.click('#caption-run');
    await page.waitForFunction(() => document.getElementById('caption-result').textContent !== '' ||
      !document.getElementById('error').hidden);
    const cap = await page.textContent('#caption-result');
    const used = parseInt(await page.inputValue('#beam'), 10);
    const api = await (await page.request.post(url + '/v1/caption', { data: { image: imageB64, beam: used } })).json();
    check('the page shows the API\'s caption', cap === api.caption && cap.length > 0, `page "${cap}", API "${api.caption}"`);
    if (expectCaption) check('the caption equals `mmkit caption`', cap === expectCaption, `page "${cap}", CLI "${expectCaption}"`);
  }

  const gridHits = () => page.$$eval('#grid figure', (fs) => fs.map((f) => ({ name: f.dataset.name, score: parseFloat(f.dataset.score) })));
  // Runs "find similar images" and waits for the grid it draws (or the error it shows).
  const similar = async () => {
    await page.evaluate(() => { document.getElementById('grid').innerHTML = ''; document.getElementById('search-note').textContent = ''; });
    await page.click('#similar');
    await page.waitForFunction(() => document.getElementById('search-note').textContent !== '' || !document.getElementById('error').hidden);
    return gridHits();
  };
  const pageError = async () => (await page.isHidden('#error')) ? '' : await page.textContent('#error');

  if (health.live_index) {
    // The live index: add the uploaded image under two ids with different metadata, search with
    // filters, refuse a duplicate id and a malformed filter naming the problem, remove one.
    check('live index controls shown', await page.isVisible('#live-add') && await page.isVisible('#filter'));
    const add = async (id, meta) => {
      await page.fill('#item-id', id);
      await page.fill('#item-meta', meta);
      await page.evaluate(() => { delete document.getElementById('add-result').dataset.added; });
      await page.click('#add-run');
      await page.waitForFunction((i) => document.getElementById('add-result').dataset.added === i || !document.getElementById('error').hidden, id);
    };
    await add('upload-1', '{"kind": "upload", "year": 2024}');
    check('the image is added to the live index', (await page.textContent('#add-result')).includes('added upload-1'),
          await page.textContent('#add-result'));
    await page.waitForFunction(() => document.getElementById('status').textContent.includes('live index 1 items'));
    check('the status counts the live index', (await page.textContent('#status')).includes('live index 1 items'));
    await add('upload-1', '{}');
    const dup = await pageError();
    check('a duplicate id is refused with the server\'s message', dup.includes("'upload-1' is already in the index"), dup);
    await add('upload-2', '{"kind": "other", "year": 2020}');
    const item = await (await page.request.get(url + '/v1/index/items/upload-2')).json();
    check('the second item has its metadata', item.metadata && item.metadata.kind === 'other', JSON.stringify(item));

    let hits = await similar();
    check('search finds both copies first', hits.length === 2 && hits.every((h) => h.score > 0.999), JSON.stringify(hits));
    await page.fill('#filter', '{"kind": "upload"}');
    hits = await similar();
    check('an equality filter keeps only matching items', hits.length === 1 && hits[0].name === 'upload-1', JSON.stringify(hits));
    await page.fill('#filter', '{"year": {"$lt": 2022}}');
    hits = await similar();
    check('a range filter keeps only matching items', hits.length === 1 && hits[0].name === 'upload-2', JSON.stringify(hits));
    await page.fill('#filter', '{"year": {"$gt": [1]}}');
    await similar();
    const bad = await pageError();
    check('a malformed filter is named in the error', bad.includes('filter.year.$gt'), bad);
    await page.fill('#filter', '');
    hits = await similar();
    await page.click('#grid figure[data-name="upload-2"] .remove');
    await page.waitForFunction(() => document.getElementById('search-note').textContent.includes('removed upload-2'));
    const gone = await page.request.get(url + '/v1/index/items/upload-2');
    check('the remove button removes the item', gone.status() === 404, String(gone.status()));
  }

  const hits = await similar();
  const self = health.live_index ? 'upload-1' : basename(image);
  check('search by image returns results', hits.length > 0, `${hits.length} results`);
  check('the uploaded image is its own best match', hits[0].name === self && hits[0].score > 0.999,
        JSON.stringify(hits[0]));
  await page.waitForFunction(() => [...document.querySelectorAll('#grid img')].every((i) => i.complete && i.naturalWidth > 0));
  check('thumbnails load', true);

  if (text) {
    await page.fill('#query', query);
    await page.click('#search-run');
    await page.waitForFunction((q) => document.getElementById('search-note').textContent.includes(q), query);
    const n = await page.$$eval('#grid figure', (fs) => fs.length);
    check('text search shows a thumbnail grid', n > 0, `${n} results`);
    await page.waitForFunction(() => [...document.querySelectorAll('#grid img')].every((i) => i.complete && i.naturalWidth > 0));
  }

  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`screenshot: ${screenshot}`);
  }
  check('no request left the server', external.length === 0, external.join(' '));
  check('no script errors', pageErrors.length === 0, pageErrors.join(' | '));
} catch (e) {
  check('browser session', false, String(e));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
