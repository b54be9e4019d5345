// node_broadcast.js: a Node `ws` chat-room server, the bench's Node peer
// for the fanout workload. It speaks just enough of vkws's chat JSON for
// bench/wsload fanout: join (ack if id) and chat (ack if id, then the
// chat message to every member of the room, sender included, formatted
// once). Like lws_broadcast it skips tokens (userId is "u" and a
// connection number), the auth reply, user_join/user_list/history,
// leave and rate limits.
//
//   node node_broadcast.js [--listen 127.0.0.1:0]
'use strict';
const { WebSocketServer } = require('ws');

const arg = process.argv.indexOf('--listen');
const spec = arg > 0 ? process.argv[arg + 1] : '127.0.0.1:0';
const colon = spec.lastIndexOf(':');
const host = spec.slice(0, colon);

const rooms = new Map(); // name -> { seq, members: Set<ws> }
let nextId = 0;

const wss = new WebSocketServer({
  host, port: Number(spec.slice(colon + 1)),
  perMessageDeflate: false, maxPayload: 64 << 10, backlog: 4096,
});
wss.on('listening', () => {
  process.stdout.write(`listening on ${host}:${wss.address().port}\n`);
});

function ack(ws, id, code) {
  if (id !== undefined) ws.send(JSON.stringify({ type: 'ack', id, code }));
}

wss.on('connection', (ws) => {
  const id = ++nextId;
  const user = { clientId: `c${id}`, userId: `u${id}`, userInfo: {} };
  const mine = new Set();
  ws.on('error', () => {});
  ws.on('close', () => {
    for (const name of mine) {
      const r = rooms.get(name);
      r.members.delete(ws);
      if (r.members.size === 0) rooms.delete(name);
    }
  });
  ws.on('message', (data) => {
    let m;
    try { m = JSON.parse(data); } catch { return ack(ws, undefined, -2); }
    if (m === null || typeof m.room !== 'string') return ack(ws, m && m.id, -2);
    if (m.type === 'join') {
      let r = rooms.get(m.room);
      if (!r) rooms.set(m.room, (r = { seq: 0, members: new Set() }));
      r.members.add(ws);
      mine.add(m.room);
      return ack(ws, m.id, 0);
    }
    if (m.type === 'chat' && typeof m.content === 'string') {
      const r = rooms.get(m.room);
      if (!r || !r.members.has(ws)) return ack(ws, m.id, -4);
      ack(ws, m.id, 0);
      const out = JSON.stringify({
        type: 'chat', room: m.room, seq: ++r.seq, from: user,
        message: m.content, timestamp: Date.now(),
      });
      for (const member of r.members) member.send(out);
      return undefined;
    }
    return ack(ws, m.id, -1);
  });
});
process.on('SIGTERM', () => process.exit(0));
