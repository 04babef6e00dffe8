// What the ONNX Runtime sides of the benchmarks share (benchmarks only).
import ort from 'onnxruntime-node';

// A session on one intra-op and one inter-op thread, sequential, all graph
// optimisations: the peer of pacd's one-thread engine.
export async function oneThreadSession(path) {
  return ort.InferenceSession.create(path, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

// Run `warmup` calls, then time `iters` calls of session.run(feeds[i % n])
// one by one and print the JSON line the drivers collect (µs: median, mean,
// p99). run() is asynchronous: the time includes the promise round trip,
// which is part of what a Node caller pays.
export async function timeRuns(session, model, feeds, iters, warmup) {
  for (let i = 0; i < warmup; i++) await session.run(feeds[i % feeds.length]);
  const t = new Float64Array(iters);
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds[i % feeds.length]);
    t[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  const sorted = Array.from(t).sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / iters;
  console.log(JSON.stringify({
    engine: 'onnxruntime-node', model, iters, threads: 1,
    us_per_step: +sorted[Math.floor(iters / 2)].toFixed(3), mean_us: +mean.toFixed(3),
    p99_us: +sorted[Math.floor(iters * 0.99)].toFixed(3),
  }));
}
