#!/usr/bin/env node
// ONNX Runtime peer of bench/embed_bench.cpp: embeds the image batches a PIL DataLoader writes to
// stdin (bench/torch_embed_folder.py --feed-ort: int32 n, then n x 3 x R x R float32, repeated),
// so ORT is fed by the same PIL preprocessing a PyTorch user runs, and writes the L2-normalised
// embeddings as raw float32 [N, E] to --out.
//
//   python3 bench/torch_embed_folder.py --images DIR --feed-ort --workers 2 |
//     node bench/ort/ort_embed_stream.js --model DIR/clip_image.onnx --out E.f32 [--threads 2] [--spin 1|0]
//
// Session as in ort_clip_bench.js: intra-op threads = --threads, inter-op 1, sequential, ORT_ENABLE_ALL.
// Prints one JSON line {"images", "seconds"} (seconds since this process started).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

const t0 = process.hrtime.bigint();

function parseArgs(argv) {
  const o = { threads: 2, spin: 1, res: 224 };
  for (let i = 2; i < argv.length; i += 2) {
    const a = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--model') o.model = v;
    else if (a === '--out') o.out = v;
    else if (a === '--threads') o.threads = parseInt(v, 10);
    else if (a === '--spin') o.spin = parseInt(v, 10);
    else if (a === '--resolution') o.res = parseInt(v, 10);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.model || !o.out) throw new Error('--model and --out are required');
  return o;
}

// Reads exactly n bytes from stdin (null at a clean end of input).
function makeReader() {
  let chunks = [], have = 0, ended = false, wake = null;
  process.stdin.on('data', (c) => { chunks.push(c); have += c.length; if (wake) wake(); });
  process.stdin.on('end', () => { ended = true; if (wake) wake(); });
  return async function read(n) {
    while (have < n && !ended) await new Promise((r) => { wake = r; });
    wake = null;
    if (have < n) {
      if (have === 0) return null;
      throw new Error(`truncated input: wanted ${n} bytes, got ${have}`);
    }
    const all = Buffer.concat(chunks);
    chunks = [all.subarray(n)];
    have -= n;
    return all.subarray(0, n);
  };
}

async function main() {
  const o = parseArgs(process.argv);
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: String(o.spin) } } },
  });
  const read = makeReader();
  const per = 3 * o.res * o.res;
  const out = [];
  let images = 0;
  for (;;) {
    const h = await read(4);
    if (h === null) break;
    const n = h.readInt32LE(0);
    const bytes = await read(n * per * 4);
    const data = new Float32Array(n * per);
    new Uint8Array(data.buffer).set(bytes);
    const r = await session.run({ images: new ort.Tensor('float32', data, [n, 3, o.res, o.res]) });
    const e = r.embeddings, E = e.dims[1];
    for (let i = 0; i < n; ++i) {
      const row = e.data.slice(i * E, (i + 1) * E);
      let s = 0;
      for (const v of row) s += v * v;
      s = Math.sqrt(s);
      for (let k = 0; k < E; ++k) row[k] /= s;
      out.push(Buffer.from(row.buffer));
    }
    images += n;
  }
  fs.writeFileSync(o.out, Buffer.concat(out));
  console.log(JSON.stringify({ framework: 'onnxruntime', images, threads: o.threads, spin: o.spin,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
}

main().catch((e) => {
  console.error(`ort_embed_stream: ${e.message}`);
  process.exit(1);
});
