#!/usr/bin/env node
// ONNX Runtime peer for bench/clip_bench (onnxruntime-node from npm, installed with --ignore-scripts:
// the package ships its prebuilt linux-x64 binding and libonnxruntime, so no install script is needed).
//
//   node bench/ort/ort_clip_bench.js --model DIR/clip_image.onnx --input CHECK.safetensors --name images
//        [--batches 1,32] [--threads 2] [--warmup 2] [--reps 20] [--reps-large 5] [--spin 1|0]
//
// --input: a safetensors file holding the tensor --name ("images" f32 [N, 3, R, R] or "ids" i64/i32
// [N, T]) — the same inputs the other peers use (written by bench/torch_clip_bench.py --dump).
// Session: intra-op threads = --threads, inter-op 1, sequential execution, all graph optimisations
// (ORT_ENABLE_ALL); --spin 0 turns off intra-op spin-waiting (session.intra_op.allow_spinning).
// Prints one JSON line per batch {"batch","reps","ms_min","ms_median","cpu_ms_median" (process CPU
// time per call: user + system of all threads)}, then one line with the
// embeddings of the first call at the largest batch ({"embeddings": [[...], ...]}) for the parity check.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const o = { batches: '1,32', threads: 2, warmup: 2, reps: 20, repsLarge: 5, spin: 1 };
  for (let i = 2; i < argv.length; ++i) {
    const a = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`${a} needs a value`);
    ++i;
    if (a === '--model') o.model = v;
    else if (a === '--input') o.input = v;
    else if (a === '--name') o.name = v;
    else if (a === '--batches') o.batches = v;
    else if (a === '--threads') o.threads = parseInt(v, 10);
    else if (a === '--warmup') o.warmup = parseInt(v, 10);
    else if (a === '--reps') o.reps = parseInt(v, 10);
    else if (a === '--reps-large') o.repsLarge = parseInt(v, 10);
    else if (a === '--spin') o.spin = parseInt(v, 10);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.model || !o.input || !o.name) throw new Error('--model, --input and --name are required');
  return o;
}

// One tensor of a safetensors file: [u64 header length][JSON header][data].
function readSafetensor(path, name) {
  const buf = fs.readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  const e = header[name];
  if (!e) throw new Error(`${path}: no tensor '${name}'`);
  const [b, end] = e.data_offsets;
  const bytes = buf.subarray(8 + n + b, 8 + n + end);
  const copy = new Uint8Array(bytes.length);  // aligned copy for the typed-array view
  copy.set(bytes);
  let data;
  if (e.dtype === 'F32') data = new Float32Array(copy.buffer);
  else if (e.dtype === 'I64') data = new BigInt64Array(copy.buffer);
  else if (e.dtype === 'I32') data = BigInt64Array.from(new Int32Array(copy.buffer), (x) => BigInt(x));
  else throw new Error(`${path}: tensor '${name}' has dtype ${e.dtype}, expected F32, I64 or I32`);
  return { data, shape: e.shape, type: e.dtype === 'F32' ? 'float32' : 'int64' };
}

async function main() {
  const o = parseArgs(process.argv);
  const input = readSafetensor(o.input, o.name);
  const batches = o.batches.split(',').map((s) => parseInt(s, 10));
  const bmax = Math.max(...batches);
  if (input.shape[0] < bmax) throw new Error(`${o.input}: '${o.name}' has ${input.shape[0]} rows, need ${bmax}`);
  const per = input.shape.slice(1).reduce((a, b) => a * b, 1);
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: String(o.spin) } } },
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  let dumped = null;
  for (const B of batches) {
    const x = new ort.Tensor(input.type, input.data.slice(0, B * per), [B, ...input.shape.slice(1)]);
    const reps = B > 8 ? o.repsLarge : o.reps;
    const times = [], cpu = [];
    for (let r = 0; r < o.warmup + reps; ++r) {
      const s = process.hrtime.bigint(), c = process.cpuUsage();
      const out = await session.run({ [o.name]: x });
      const ms = Number(process.hrtime.bigint() - s) / 1e6;
      const cu = process.cpuUsage(c);
      if (r >= o.warmup) {
        times.push(ms);
        cpu.push((cu.user + cu.system) / 1e3);
      }
      if (r === 0 && B === bmax) {
        const e = out.embeddings, E = e.dims[1];
        dumped = [];
        for (let i = 0; i < B; ++i) dumped.push(Array.from(e.data.subarray(i * E, (i + 1) * E)));
      }
    }
    times.sort((a, b) => a - b);
    cpu.sort((a, b) => a - b);
    console.log(JSON.stringify({
      framework: 'onnxruntime', version: ort.env.versions ? ort.env.versions.common : undefined,
      batch: B, threads: o.threads, reps, ms_min: +times[0].toFixed(3),
      ms_median: +times[Math.floor(times.length / 2)].toFixed(3),
      cpu_ms_median: +cpu[Math.floor(cpu.length / 2)].toFixed(3), session_create_ms: +loadMs.toFixed(1),
      spin: o.spin,
    }));
  }
  console.log(JSON.stringify({ embeddings: dumped }));
}

main().catch((e) => {
  console.error(`ort_clip_bench: ${e.message}`);
  process.exit(1);
});
