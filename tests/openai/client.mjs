// The official OpenAI client (npm `openai`) against `mmkit serve`: the embeddings it gets for
// texts (OpenAI's input) and for images (Jina's {"image": data URL} items) must equal, float32
// for float32, what `mmkit embed --json` printed for the same model and inputs. Also: the model
// list, the client's default base64 transfer and explicit float, and the errors it raises for an
// unknown model and a wrong key. Requests go one at a time, so the server's batches are the CLI's
// (all texts of a call, all images of a call): the last bits of a GEMM depend on its batch.
//   node client.mjs --url https://127.0.0.1:PORT/v1 --key KEY --model NAME --expect embed.json
//        --expect-one embed1.json --texts texts.json --image a.png [--image b.png]
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';

const args = { image: [] };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (k === 'image') args.image.push(process.argv[i + 1]); else args[k] = process.argv[i + 1];
}
const expect = JSON.parse(readFileSync(args.expect, 'utf8'));
const expectOne = JSON.parse(readFileSync(args['expect-one'], 'utf8'));  // one text, one image: batches of one
const texts = JSON.parse(readFileSync(args.texts, 'utf8'));
const client = new OpenAI({ baseURL: args.url, apiKey: args.key, maxRetries: 0, timeout: 60000 });

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}
// Equal as float32 (tol 0): the server's JSON/base64 floats and the CLI's JSON floats, both from
// float32. tol > 0: equal up to |diff| <= tol, for answers that ran another GEMM path (below).
function sameRows(got, want, what, tol = 0) {
  if (got.length !== want.length) return check(false, `${what}: ${got.length} rows, want ${want.length}`);
  let worst = 0, diff = 0;
  for (let r = 0; r < want.length; r++) {
    if (got[r].length !== want[r].length) return check(false, `${what}: row ${r} has ${got[r].length} values, want ${want[r].length}`);
    for (let k = 0; k < want[r].length; k++) {
      const d = Math.abs(Math.fround(got[r][k]) - Math.fround(want[r][k]));
      if (d > 0) diff++;
      worst = Math.max(worst, d);
    }
  }
  check(worst <= tol, `${what}: ${want.length} x ${want[0].length} values ${tol ? `within ${tol}` : 'identical'} (${diff} differ, max |diff| ${worst})`);
}

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
check(ids.includes(args.model), `models.list() has '${args.model}' (${ids.join(', ')})`);

const byDefault = await client.embeddings.create({ model: args.model, input: texts });  // the client asks for base64
check(byDefault.object === 'list' && byDefault.model === args.model, 'response object "list" naming the model');
check(byDefault.data.every((d, i) => d.object === 'embedding' && d.index === i), 'data[i]: object "embedding", index i');
check(byDefault.usage.prompt_tokens > 0 && byDefault.usage.total_tokens === byDefault.usage.prompt_tokens,
  `usage ${JSON.stringify(byDefault.usage)}`);
sameRows(byDefault.data.map((d) => Array.from(d.embedding)), expect.text_embeddings, 'texts (client default: base64)');
const asFloat = await client.embeddings.create({ model: args.model, input: texts, encoding_format: 'float' });
sameRows(asFloat.data.map((d) => d.embedding), expect.text_embeddings, 'texts (encoding_format float)');
const one = await client.embeddings.create({ model: args.model, input: texts[0] });
sameRows([Array.from(one.data[0].embedding)], [expect.text_embeddings[0]], 'one string');

const images = args.image.map((p) => ({ image: 'data:image/png;base64,' + readFileSync(p).toString('base64') }));
const img = await client.embeddings.create({ model: args.model, input: images });
sameRows(img.data.map((d) => Array.from(d.embedding)), expect.image_embeddings, "images (Jina's {image: data URL})");
// Each tower's second call: from its second call on the engine multiplies by weights packed into
// oneDNN's blocked layout (infer/packed_linear.h), while a one-shot `mmkit embed` reads them in
// place; the engine pads calls of fewer than 16 rows so that both layouts give the same bits, so
// these answers too must equal the CLI's bit for bit.
const mixed = await client.embeddings.create({
  model: args.model, encoding_format: 'float',
  input: [{ text: texts[0] }, { image: readFileSync(args.image[0]).toString('base64') }],
});
sameRows(mixed.data.map((d) => d.embedding), [expectOne.text_embeddings[0], expectOne.image_embeddings[0]],
  'a text item and a raw-base64 image item (packed weights)');

try {
  await client.embeddings.create({ model: 'text-embedding-3-small', input: 'a cat' });
  check(false, 'unknown model: no error');
} catch (e) {
  check(e instanceof OpenAI.NotFoundError && /not served here/.test(e.message), `unknown model: ${e.status} ${e.message}`);
}
try {
  await new OpenAI({ baseURL: args.url, apiKey: 'not-a-key', maxRetries: 0 }).models.list();
  check(false, 'wrong key: no error');
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError, `wrong key: ${e.status} ${e.message}`);
}
if (failures) {
  console.error(`openai client test: ${failures} check(s) failed`);
  process.exit(1);
}
console.log('openai client test: all checks passed');
