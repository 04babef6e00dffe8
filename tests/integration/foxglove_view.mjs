// A Foxglove viewer of pacd's live view for tests/integration/test_foxglove.py
// and bench/run_foxglove_bench.sh, built on npm's @foxglove/ws-protocol
// client (over the `ws` WebSocket) and protobufjs.
//
//   node foxglove_view.mjs URL SUBPROTOCOL check TOPIC[,TOPIC...] [N]
//     Connect with SUBPROTOCOL, wait for serverInfo and the advertise,
//     subscribe to each TOPIC, decode every message with the protobuf schema
//     the advertise carried (a base64 FileDescriptorSet) until each topic has
//     N (default 3) messages, then unsubscribe the first topic and go on until
//     another topic has 3 more messages: none of the first may come after the
//     second of those. Prints one JSON document on stdout:
//       { protocol, serverInfo, channels: [{id, topic, encoding, schemaName}],
//         messages: {topic: first decoded message}, counts: {topic: n},
//         logTimes: {topic: [ns...]}, lateAfterUnsubscribe: n }
//     64-bit integers print as decimal strings, bytes as {length, sum}.
//   node foxglove_view.mjs URL SUBPROTOCOL hold
//     Subscribe to every channel and decode what comes until stdin closes;
//     then print {"messages": n, "bytes": b}. The benchmark's viewers.
// Exits non-zero with the error on stderr when the server misbehaves or
// closes the connection.
import wsProtocol from "@foxglove/ws-protocol";
import protobuf from "protobufjs";
import "protobufjs/ext/descriptor.js";
import WebSocket from "ws";
import { plain } from "./plain_json.mjs";

const { FoxgloveClient } = wsProtocol;

const [url, subprotocol, mode, topicArg, nArg] = process.argv.slice(2);
if (!url || !subprotocol || !["check", "hold"].includes(mode)) {
  console.error("usage: node foxglove_view.mjs URL SUBPROTOCOL check TOPICS [N] | hold");
  process.exit(2);
}
const wanted = mode === "check" ? topicArg.split(",") : [];
const N = Number(nArg || 3);

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

const ws = new WebSocket(url, [subprotocol]);
const client = new FoxgloveClient({ ws });
const out = { protocol: null, serverInfo: null, channels: [], messages: {}, counts: {}, logTimes: {} };
const channelById = new Map();
const typeBySchema = new Map();
const subs = new Map(); // subscription id -> channel
let done = false;
let unsubscribed = null; // {subId, topic, otherAfter: count of other messages since}
let lateAfterUnsubscribe = 0;
let holdMessages = 0;
let holdBytes = 0;

function typeFor(channel) {
  const key = channel.schemaName + "\u0000" + channel.schema;
  if (!typeBySchema.has(key)) {
    const bytes = Buffer.from(channel.schema, "base64");
    const root = protobuf.Root.fromDescriptor(bytes);
    typeBySchema.set(key, root.lookupType(channel.schemaName));
  }
  return typeBySchema.get(key);
}

function finish() {
  if (done) return;
  done = true;
  out.lateAfterUnsubscribe = lateAfterUnsubscribe;
  process.stdout.write(JSON.stringify(out) + "\n");
  client.close();
  process.exit(0);
}

client.on("open", () => {
  out.protocol = ws.protocol;
});
client.on("error", (err) => fail("client error: " + (err && err.message ? err.message : err)));
client.on("close", (ev) => {
  if (!done) fail(`connection closed (code ${ev && ev.code}, ${ev && ev.reason})`);
});
client.on("serverInfo", (info) => {
  out.serverInfo = info;
});
client.on("status", (s) => {
  if (s.level >= 2) fail("server error status: " + s.message);
});
client.on("advertise", (channels) => {
  for (const c of channels) {
    channelById.set(c.id, c);
    out.channels.push({ id: c.id, topic: c.topic, encoding: c.encoding, schemaName: c.schemaName });
    try {
      typeFor(c);
    } catch (err) {
      fail(`channel ${c.topic}: schema ${c.schemaName} does not load: ${err.message}`);
    }
  }
  const pick = mode === "hold" ? channels : channels.filter((c) => wanted.includes(c.topic));
  if (mode === "check") {
    for (const t of wanted)
      if (!channels.some((c) => c.topic === t)) fail(`topic ${t} not advertised`);
  }
  for (const c of pick) {
    const id = client.subscribe(c.id);
    subs.set(id, c);
    out.counts[c.topic] = 0;
  }
});
client.on("message", ({ subscriptionId, timestamp, data }) => {
  const c = subs.get(subscriptionId);
  if (!c) {
    if (unsubscribed && subscriptionId === unsubscribed.subId) {
      if (unsubscribed.otherAfter >= 2 * (wanted.length - 1)) lateAfterUnsubscribe++;
      return;
    }
    fail(`message for unknown subscription ${subscriptionId}`);
  }
  const type = typeFor(c);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let decoded;
  try {
    decoded = type.decode(bytes);
  } catch (err) {
    fail(`${c.topic}: message does not decode as ${c.schemaName}: ${err.message}`);
  }
  if (mode === "hold") {
    holdMessages++;
    holdBytes += bytes.length;
    return;
  }
  out.counts[c.topic]++;
  (out.logTimes[c.topic] ||= []).push(timestamp.toString());
  if (!(c.topic in out.messages))
    out.messages[c.topic] = plain(type.toObject(decoded, { longs: String, enums: Number, defaults: true, arrays: true }));
  if (unsubscribed) {
    unsubscribed.otherAfter++;
    if (unsubscribed.otherAfter >= 3 * (wanted.length - 1)) finish();
    return;
  }
  if (wanted.every((t) => out.counts[t] >= N)) {
    if (wanted.length < 2) return finish();
    // unsubscribe the first topic; the others go on
    for (const [id, ch] of subs) {
      if (ch.topic === wanted[0]) {
        client.unsubscribe(id);
        subs.delete(id);
        unsubscribed = { subId: id, topic: ch.topic, otherAfter: 0 };
        break;
      }
    }
  }
});

if (mode === "hold") {
  process.stdin.resume();
  process.stdin.on("end", () => {
    done = true;
    process.stdout.write(JSON.stringify({ messages: holdMessages, bytes: holdBytes }) + "\n");
    client.close();
    process.exit(0);
  });
}
