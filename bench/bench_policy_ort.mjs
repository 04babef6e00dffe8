// ONNX Runtime side of the policy benchmark (prints figures, asserts nothing).
//   node bench/bench_policy_ort.mjs DIR [ITERS]
// Times InferenceSession.run at batch 1 with one intra-op and one inter-op
// thread on DIR/<model>.onnx (made by bench_policy_torch.py make DIR).
// Note: onnxruntime-node's run() is asynchronous; the time includes the
// promise round trip, which is part of what a Node caller pays.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { oneThreadSession, timeRuns } from './bench_ort_timing.mjs';

const dir = process.argv[2];
const iters = Number(process.argv[3] ?? 2000);
if (!dir) {
  console.error('usage: node bench_policy_ort.mjs DIR [ITERS]');
  process.exit(2);
}
const models = JSON.parse(readFileSync(join(dir, 'models.json'), 'utf8'));
const raw = readFileSync(join(dir, 'obs.bin'));
const obs = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);

for (const [name, info] of Object.entries(models)) {
  const session = await oneThreadSession(join(dir, `${name}.onnx`));
  const d = info.obs_dim;
  const rows = obs.length / d;
  const feeds = [];
  for (let r = 0; r < rows; r++)
    feeds.push({ observation: new ort.Tensor('float32', obs.slice(r * d, (r + 1) * d), [1, d]) });
  const first = [];
  for (let r = 0; r < Math.min(64, rows); r++)
    first.push(...(await session.run(feeds[r])).action.data);
  writeFileSync(join(dir, `${name}.ort_actions.bin`), Buffer.from(new Float32Array(first).buffer));
  await timeRuns(session, name, feeds, iters, 200);
  await session.release();
}
