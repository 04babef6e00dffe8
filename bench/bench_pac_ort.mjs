// ONNX Runtime side of the PAC benchmark (prints figures, asserts nothing).
//   node bench/bench_pac_ort.mjs DIR [ITERS]
// Times InferenceSession.run at batch 1 with one intra-op and one inter-op
// thread on DIR/<size>.onnx (made by bench_pac_torch.py make DIR), feeding the
// same rows as pacd and PyTorch; writes the logits of the first rows to
// DIR/<size>.ort_logits.bin. run() is asynchronous: the time includes the
// promise round trip, which is part of what a Node caller pays.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { oneThreadSession, timeRuns } from './bench_ort_timing.mjs';

const dir = process.argv[2];
const iters = Number(process.argv[3] ?? 200);
if (!dir) {
  console.error('usage: node bench_pac_ort.mjs DIR [ITERS]');
  process.exit(2);
}
const models = JSON.parse(readFileSync(join(dir, 'models.json'), 'utf8'));
const rawObs = readFileSync(join(dir, 'obs.bin'));
const obs = new Float32Array(rawObs.buffer, rawObs.byteOffset, rawObs.byteLength / 4);
const img = new Uint8Array(readFileSync(join(dir, 'img.bin')));
const frame = 128 * 128 * 3;

for (const [name, info] of Object.entries(models)) {
  const session = await oneThreadSession(join(dir, `${name}.onnx`));
  const d = info.obs_dim;
  const rows = Math.min(obs.length / d, img.length / (2 * frame));
  const feeds = [];
  for (let r = 0; r < rows; r++) {
    const base = r * 2 * frame;
    feeds.push({
      values: new ort.Tensor('float32', obs.slice(r * d, (r + 1) * d), [1, d]),
      camera0: new ort.Tensor('uint8', img.slice(base, base + frame), [1, 128, 128, 3]),
      camera1: new ort.Tensor('uint8', img.slice(base + frame, base + 2 * frame), [1, 128, 128, 3]),
    });
  }
  const first = [];
  for (let r = 0; r < Math.min(info.check_rows, rows); r++)
    first.push(...(await session.run(feeds[r])).logits.data);
  writeFileSync(join(dir, `${name}.ort_logits.bin`), Buffer.from(new Float32Array(first).buffer));
  await timeRuns(session, name, feeds, iters, 20);
  await session.release();
}
