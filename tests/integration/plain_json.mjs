// JSON-safe copies of decoded protobuf messages for the Node readers the
// integration tests run (mcap_read.mjs, foxglove_view.mjs): 64-bit integers
// become decimal strings, byte fields a {length, sum} summary (the sum of the
// bytes mod 2^32), so Python can compare them with what it sent.

export function bytesSummary(b) {
  let sum = 0;
  for (let i = 0; i < b.length; i++) sum = (sum + b[i]) >>> 0;
  return { length: b.length, sum };
}

export function plain(obj) {
  return JSON.parse(
    JSON.stringify(obj, (_k, v) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Uint8Array) return bytesSummary(v);
      if (v && v.type === "Buffer" && Array.isArray(v.data)) return bytesSummary(Uint8Array.from(v.data));
      return v;
    }),
  );
}
