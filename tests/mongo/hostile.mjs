// A MongoDB wire-protocol server that answers find with broken replies, for
// test_recover_mongodb.  Usage: node hostile.mjs STATE_DIR
// Writes STATE_DIR/port once listening.  The collection name picks the reply:
//   elements  firstBatch holds numbers and a string, not documents
//   badlen    the document in firstBatch claims a length past its end
//   deep      a document nested a million levels deep (16 MB; libbson's
//             bson_validate recursed once per level and overflowed the stack)
//   deep300   one nested 300 levels (bson_as_json writes "{ ... }" below 200)
//   good      one document {sid: "s1"}
//   loop      a cursor that never ends: each getMore answers one more document
import net from 'node:net';
import fs from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const BSON = require('bson');
const state = process.argv[2];
let reqId = 1;
function hdr(len, rt, op) { const b = Buffer.alloc(16); b.writeInt32LE(len, 0); b.writeInt32LE(reqId++, 4); b.writeInt32LE(rt, 8); b.writeInt32LE(op, 12); return b; }
function opMsg(rt, doc) { const body = Buffer.concat([Buffer.alloc(4), Buffer.from([0]), doc]); return Buffer.concat([hdr(16 + body.length, rt, 2013), body]); }
function opReply(rt, doc) { const b = Buffer.alloc(20); b.writeInt32LE(8, 0); b.writeInt32LE(1, 16); const body = Buffer.concat([b, doc]); return Buffer.concat([hdr(16 + body.length, rt, 1), body]); }
const hello = () => BSON.serialize({ ismaster: true, isWritablePrimary: true, helloOk: true, maxWireVersion: 17, minWireVersion: 0, maxBsonObjectSize: 16777216, maxMessageSizeBytes: 48000000, maxWriteBatchSize: 100000, localTime: new Date(), ok: 1 });
// {a: {a: ... {} ...}} nested @p n levels, built as bytes (bson's serializer recurses)
function nested(n) {
  const b = Buffer.alloc(5 + 8 * n);
  for (let i = 0, o = 0; i < n; i++, o += 7) { b.writeInt32LE(5 + 8 * (n - i), o); b[o + 4] = 3; b[o + 5] = 0x61; }
  b.writeInt32LE(5, 7 * n);
  return b;
}
function findReply(cmd) {
  const ns = cmd.$db + '.' + cmd.find, id = BSON.Long.fromNumber(0);
  if (cmd.find === 'loop') return BSON.serialize({ cursor: { firstBatch: [{ sid: 's1' }], id: BSON.Long.fromNumber(7), ns }, ok: 1 });
  if (cmd.find === 'elements') return BSON.serialize({ cursor: { firstBatch: [1, 2, 's'], id, ns }, ok: 1 });
  if (cmd.find.startsWith('deep')) {
    // the reply with a placeholder document, its bytes then put in its place
    const mark = Buffer.from(BSON.serialize({ m: 'PLACEHOLDER' })), r = Buffer.from(BSON.serialize({ cursor: { firstBatch: [{ m: 'PLACEHOLDER' }], id, ns }, ok: 1 }));
    const at = r.indexOf(mark), out = Buffer.concat([r.subarray(0, at), nested(cmd.find === 'deep' ? 1000000 : 300), r.subarray(at + mark.length)]);
    const delta = out.length - r.length;
    out.writeInt32LE(out.readInt32LE(0) + delta, 0);                   // the reply
    const c = r.indexOf(Buffer.from('cursor\0')) + 7, f = r.indexOf(Buffer.from('firstBatch\0')) + 11;
    out.writeInt32LE(out.readInt32LE(c) + delta, c);                   // cursor
    out.writeInt32LE(out.readInt32LE(f) + delta, f);                   // firstBatch
    return out;
  }
  const b = Buffer.from(BSON.serialize({ cursor: { firstBatch: [{ sid: 's1', body: 'ABCD' }], id, ns }, ok: 1 }));
  if (cmd.find === 'badlen') b.writeInt32LE(2000, b.indexOf(Buffer.from('sid')) - 5);
  return b;
}
function handle(sock, rt, op, body) {
  if (op === 2004) { sock.write(opReply(rt, hello())); return; } // OP_QUERY: the handshake
  if (op !== 2013) return;
  const cmd = BSON.deserialize(body.subarray(5, 5 + body.readInt32LE(5)));
  const name = Object.keys(cmd)[0];
  if (name === 'find') sock.write(opMsg(rt, findReply(cmd)));
  else if (name === 'getMore') sock.write(opMsg(rt, BSON.serialize({ cursor: { nextBatch: [{ sid: 's1' }], id: BSON.Long.fromNumber(7), ns: cmd.$db + '.' + cmd.collection }, ok: 1 })));
  else if (/^(hello|isMaster|ismaster)$/.test(name)) sock.write(opMsg(rt, hello()));
  else sock.write(opMsg(rt, BSON.serialize({ ok: 1 })));
}
const server = net.createServer(sock => {
  let buf = Buffer.alloc(0);
  sock.on('error', () => {});
  sock.on('data', d => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 16 && buf.length >= buf.readInt32LE(0)) {
      const len = buf.readInt32LE(0), rt = buf.readInt32LE(4), op = buf.readInt32LE(12);
      const body = buf.subarray(16, len);
      buf = buf.subarray(len);
      try { handle(sock, rt, op, body); } catch (e) { sock.destroy(); }
    }
  });
});
// Written aside and renamed: a reader polling for the file never sees it empty.
server.listen(0, '127.0.0.1', () => {
	fs.writeFileSync(state + '/port.tmp', String(server.address().port));
	fs.renameSync(state + '/port.tmp', state + '/port');
});
process.on('SIGTERM', () => process.exit(0));
