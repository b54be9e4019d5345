// node_echo.js: a Node `ws` echo server, the bench's Node peer for the
// echo, idle and connect workloads. Every path upgrades; each message
// comes back with its opcode. No compression, as vkws has none.
//
//   node node_echo.js [--listen 127.0.0.1:0]
'use strict';
const { WebSocketServer } = require('ws');

const arg = process.argv.indexOf('--listen');
const spec = arg > 0 ? process.argv[arg + 1] : '127.0.0.1:0';
const colon = spec.lastIndexOf(':');
const host = spec.slice(0, colon);

const wss = new WebSocketServer({
  host, port: Number(spec.slice(colon + 1)),
  perMessageDeflate: false, maxPayload: 16 << 20, backlog: 4096,
});
wss.on('listening', () => {
  process.stdout.write(`listening on ${host}:${wss.address().port}\n`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
process.on('SIGTERM', () => process.exit(0));
