// Independent reader of pacd episode logs for tests/integration/test_log_reader.py.
//
//   node mcap_read.mjs FILE
//
// Reads FILE record by record with @mcap/core's McapStreamReader (works on
// files cut short by a crash: it stops at the last complete record), builds
// protobuf types from the FileDescriptorSet embedded in each Schema record
// (protobufjs + its descriptor extension), decodes every message and prints
// one JSON document on stdout:
//   { records, done, bytes_remaining, error, header, metadata: [{name, metadata}],
//     schemas: [{id, name, encoding}], channels: [{id, topic, schemaId, messageEncoding}],
//     statistics, footer, indexed, messages: [{channelId, topic, sequence, logTime, publishTime, message}] }
// 64-bit integers are printed as decimal strings; bytes fields as
// {length, sum} where sum is the byte sum modulo 2^32.
import { readFileSync } from "node:fs";
import { McapIndexedReader, McapStreamReader } from "@mcap/core";
import protobuf from "protobufjs";
import "protobufjs/ext/descriptor.js";
import { plain } from "./plain_json.mjs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node mcap_read.mjs FILE");
  process.exit(2);
}

const bytes = new Uint8Array(readFileSync(path));
const reader = new McapStreamReader({ validateCrcs: true });
reader.append(bytes);

const out = {
  records: 0,
  done: false,
  bytes_remaining: 0,
  error: null,
  header: null,
  metadata: [],
  schemas: [],
  channels: [],
  statistics: null,
  footer: null,
  messages: [],
};
const types = new Map();     // schema id -> protobufjs Type
const channels = new Map();  // channel id -> channel record

try {
  for (;;) {
    const record = reader.nextRecord();
    if (!record) break;
    out.records++;
    switch (record.type) {
      case "Header":
        out.header = { profile: record.profile, library: record.library };
        break;
      case "Schema": {
        out.schemas.push({ id: record.id, name: record.name, encoding: record.encoding });
        if (record.encoding === "protobuf" && !types.has(record.id)) {
          const root = protobuf.Root.fromDescriptor(record.data);
          types.set(record.id, root.lookupType(record.name));
        }
        break;
      }
      case "Channel":
        if (!channels.has(record.id)) {
          channels.set(record.id, record);
          out.channels.push({
            id: record.id,
            topic: record.topic,
            schemaId: record.schemaId,
            messageEncoding: record.messageEncoding,
          });
        }
        break;
      case "Metadata":
        out.metadata.push({ name: record.name, metadata: Object.fromEntries(record.metadata) });
        break;
      case "Message": {
        const channel = channels.get(record.channelId);
        if (!channel) throw new Error(`message on unknown channel ${record.channelId}`);
        const type = types.get(channel.schemaId);
        if (!type) throw new Error(`no protobuf schema ${channel.schemaId}`);
        const decoded = type.decode(record.data);
        const message = type.toObject(decoded, { longs: String, enums: Number, defaults: true, arrays: true });
        out.messages.push(
          plain({
            channelId: record.channelId,
            topic: channel.topic,
            sequence: record.sequence,
            logTime: record.logTime,
            publishTime: record.publishTime,
            message,
          }),
        );
        break;
      }
      case "Statistics":
        out.statistics = plain({
          messageCount: record.messageCount,
          schemaCount: record.schemaCount,
          channelCount: record.channelCount,
          metadataCount: record.metadataCount,
          messageStartTime: record.messageStartTime,
          messageEndTime: record.messageEndTime,
          channelMessageCounts: Object.fromEntries(record.channelMessageCounts),
        });
        break;
      case "Footer":
        out.footer = plain({
          summaryStart: record.summaryStart,
          summaryOffsetStart: record.summaryOffsetStart,
          summaryCrc: record.summaryCrc,
        });
        break;
      default:
        break;
    }
  }
} catch (err) {
  out.error = String(err && err.message ? err.message : err);
}
out.done = reader.done();
out.bytes_remaining = reader.bytesRemaining();

// A closed file also opens with the indexed reader, which checks the footer,
// the summary CRC and the summary records.
out.indexed = null;
if (out.done) {
  const readable = {
    size: async () => BigInt(bytes.length),
    read: async (offset, length) => bytes.subarray(Number(offset), Number(offset + length)),
  };
  try {
    const indexed = await McapIndexedReader.Initialize({ readable });
    out.indexed = {
      ok: true,
      schemas: indexed.schemasById.size,
      channels: indexed.channelsById.size,
      messageCount: indexed.statistics ? indexed.statistics.messageCount.toString() : null,
      metadataIndexes: indexed.metadataIndexes.length,
      dataSectionCrc: indexed.dataSectionCrc ?? 0,
    };
  } catch (err) {
    out.indexed = { ok: false, error: String(err && err.message ? err.message : err) };
  }
}
process.stdout.write(JSON.stringify(out));
process.stdout.write("\n");
