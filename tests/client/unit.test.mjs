/*
 * unit.test.mjs: web/vkws.js against a fake WebSocket, with Node's
 * built-in test runner and mocked timers (node --test). The fake socket
 * records what the library sends; each test plays the server's part
 * message by message, so backoff, resume, rejections and token refresh
 * are checked without a network or a clock.
 *
 *	node --test tests/client/*.test.mjs
 */
import { test, mock, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { connect, VkwsError } from '../../web/vkws.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)),
    '..', '..');

class FakeWS {
	static all = [];

	constructor(url, protocols) {
		this.url = url;
		this.protocols = protocols;
		this.sent = [];
		this.readyState = 0;
		this.closedByClient = false;
		FakeWS.all.push(this);
	}

	send(s) {
		assert.equal(this.readyState, 1, 'send on an open socket only');
		this.sent.push(JSON.parse(s));
	}

	close() {
		this.closedByClient = true;
		this.readyState = 3;
	}

	/* The server's side. */
	open() {
		this.readyState = 1;
		this.onopen({});
	}

	recv(m) {
		this.onmessage({ data: JSON.stringify(m) });
	}

	drop(code, reason) {
		this.readyState = 3;
		this.onclose({ code, reason: reason || '' });
	}

	last() {
		return this.sent[this.sent.length - 1];
	}

	take(type) {
		const i = this.sent.findIndex((m) => m.type === type);
		assert.ok(i >= 0, 'the client sent a ' + type + ': ' +
		    JSON.stringify(this.sent));
		return this.sent.splice(i, 1)[0];
	}
}

const flush = () => new Promise((r) => setImmediate(r));

beforeEach(() => {
	FakeWS.all = [];
	mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1e12 });
});

afterEach(() => {
	mock.timers.reset();
});

function user(clientId, userId, name) {
	return { clientId, userId, userInfo: name ? { name } : {} };
}

/* A client, its socket opened and signed in as alice. */
async function online(opts) {
	const states = [];
	const c = connect('ws://test/ws', Object.assign({ WebSocket: FakeWS,
	    token: 'tok-1', random: () => 0 }, opts || {}));
	c.on('state', (s) => states.push(s));
	await flush();
	const ws = FakeWS.all[FakeWS.all.length - 1];
	await signIn(ws, 'c1');
	return { c, ws, states };
}

async function signIn(ws, clientId, userId) {
	ws.open();
	const a = ws.take('auth');
	ws.recv({ type: 'auth', code: 0, msg: 'ok', clientId,
	    userId: userId || 'alice' });
	await flush();
	return a;
}

function chatMsg(room, seq, text, from) {
	return { type: 'chat', room, seq, from: from || user('cx', 'bob'),
	    message: text, timestamp: 1000 + seq };
}

test('signs in with the first message, offers vkws.json, answers ping',
    async () => {
	const c = connect('http://test/ws', { WebSocket: FakeWS,
	    token: 'tok-1' });
	const states = [];
	c.on('state', (s) => states.push(s.state));
	await flush();
	const ws = FakeWS.all[0];
	assert.equal(ws.url, 'ws://test/ws');
	assert.deepEqual(ws.protocols, ['vkws.json']);
	ws.open();
	assert.deepEqual(ws.sent[0], { type: 'auth', token: 'tok-1' });
	ws.recv({ type: 'auth', code: 0, clientId: 'c1', userId: 'alice' });
	assert.equal(c.state, 'online');
	assert.deepEqual(states, ['connecting', 'online']);
	ws.recv({ type: 'ping' });
	assert.deepEqual(ws.last(), { type: 'pong' });
});

test('requests resolve by their ack; chat resolves with the seq of the ' +
    'own copy that follows the ack', async () => {
	const { c, ws } = await online();
	const j = c.join('lobby');
	const jm = ws.take('join');
	assert.deepEqual(Object.keys(jm).sort(), ['id', 'room', 'type']);
	ws.recv({ type: 'ack', id: jm.id, code: 0 });
	assert.deepEqual(await j, { code: 0 });
	ws.recv({ type: 'user_join', room: 'lobby', user: user('c1', 'alice') });

	let settled = null;
	const p = c.chat('lobby', 'hi').then((v) => (settled = v));
	const cm = ws.take('chat');
	assert.deepEqual([cm.room, cm.content], ['lobby', 'hi']);
	ws.recv({ type: 'ack', id: cm.id, code: 0 });
	await flush();
	assert.equal(settled, null, 'the ack alone does not resolve chat()');
	const seen = [];
	c.on('chat', (m) => seen.push(m.seq));
	ws.recv(chatMsg('lobby', 7, 'hi', user('c1', 'alice')));
	assert.deepEqual(await p, { seq: 7, timestamp: 1007 });
	assert.deepEqual(seen, [7]);

	const pr = c.private('bob', 'psst');
	const pm = ws.take('private');
	assert.deepEqual([pm.targetUserId, pm.content], ['bob', 'psst']);
	ws.recv({ type: 'ack', id: pm.id, code: 0 });
	assert.deepEqual(await pr, { code: 0 });
});

test('a refused request rejects with the code and msg of PROTOCOL.md 5',
    async () => {
	const { c, ws } = await online();
	const cases = [
		[c.chat('nowhere', 'x'), 'chat', -4, 'not allowed'],
		[c.join('full'), 'join', -5, 'limit reached'],
		[c.private('ghost', 'x'), 'private', -3, 'not found'],
		[c.leave('lobby'), 'leave', -3, 'not found'],
		[c.chat('lobby', 'x'), 'chat', -6, 'rate limited']
	];
	for (const [, type, code, msg] of cases) {
		const m = ws.take(type);
		ws.recv({ type: 'ack', id: m.id, code, msg });
	}
	for (const [p, , code, msg] of cases) {
		await assert.rejects(p, (e) => e instanceof VkwsError &&
		    e.code === code && e.msg === msg);
	}
	const a = c.auth('other-user-token');
	const am = ws.take('auth');
	ws.recv({ type: 'auth', id: am.id, code: -4, msg: 'not allowed' });
	await assert.rejects(a, (e) => e.code === -4);
	await assert.rejects(c.chat(1, 2), (e) => e.code === 'invalid');
});

test('backoff doubles from backoffMin to backoffMax, jittered within ' +
    '[b/2, b)', async () => {
	for (const r of [0, 0.99]) {
		FakeWS.all = [];
		const { c, ws, states } = await online({ random: () => r,
		    backoffMin: 1000, backoffMax: 8000 });
		ws.drop(1006);
		const waits = [];
		for (let i = 0; i < 6; i++) {
			const s = states[states.length - 1];
			assert.equal(s.state, 'offline');
			waits.push(s.retryIn);
			const n = FakeWS.all.length;
			mock.timers.tick(s.retryIn - 1);
			await flush();
			assert.equal(FakeWS.all.length, n, 'no attempt early');
			mock.timers.tick(1);
			await flush();
			assert.equal(FakeWS.all.length, n + 1, 'attempt on time');
			FakeWS.all[n].drop(1006);
		}
		const base = [1000, 2000, 4000, 8000, 8000, 8000];
		waits.forEach((w, i) => {
			assert.ok(w >= base[i] / 2 && w < base[i], 'attempt ' + i +
			    ' waits ' + w + ' of ' + base[i]);
		});
		c.close();
	}
});

test('a sign-in resets the backoff; server_shutdown.reconnectIn is ' +
    'honoured', async () => {
	const { c, ws, states } = await online({ random: () => 0.5 });
	ws.drop(1006);
	mock.timers.tick(states[states.length - 1].retryIn);
	await flush();
	FakeWS.all[1].drop(1006);
	assert.ok(states[states.length - 1].retryIn >= 1000);
	mock.timers.tick(states[states.length - 1].retryIn);
	await flush();
	await signIn(FakeWS.all[2], 'c2');
	FakeWS.all[2].recv({ type: 'server_shutdown', reconnectIn: 3210 });
	FakeWS.all[2].drop(1001, 'shutdown');
	const s = states[states.length - 1];
	assert.equal(s.code, 1001);
	assert.ok(s.retryIn >= 3210 && s.retryIn < 3210 + 250, s.retryIn);
	mock.timers.tick(s.retryIn);
	await flush();
	await signIn(FakeWS.all[3], 'c3');
	FakeWS.all[3].drop(1013, 'slow consumer');
	assert.equal(states[states.length - 1].state, 'offline');
	assert.ok(states[states.length - 1].retryIn < 1000,
	    'the first retry after a sign-in uses the shortest backoff');
	mock.timers.tick(1000);
	await flush();
	assert.equal(FakeWS.all.length, 5, '1013 reconnects');
	c.close();
});

test('reconnect rejoins with since and delivers the gap once and in order',
    async () => {
	const { c, ws } = await online();
	const chats = [], hist = [];
	c.on('chat', (m) => chats.push(m.room + ':' + m.seq));
	c.on('history', (h) => hist.push(h));
	/* The default room, joined by the server at sign-in. */
	ws.recv({ type: 'user_join', room: 'general', user: user('c1',
	    'alice') });
	ws.recv({ type: 'history', room: 'general', complete: true,
	    messages: [1, 2].map((n) => chatMsg('general', n, 'g' + n)) });
	const j = c.join('lobby');
	ws.recv({ type: 'ack', id: ws.take('join').id, code: 0 });
	await j;
	ws.recv({ type: 'user_join', room: 'lobby', user: user('c1', 'alice') });
	ws.recv({ type: 'history', room: 'lobby', complete: true,
	    messages: [] });
	for (let n = 1; n <= 5; n++)
		ws.recv(chatMsg('lobby', n, 'l' + n));
	ws.recv(chatMsg('general', 3, 'g3'));
	ws.drop(1006);
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	/* The server joins general again and replays its last messages;
	 * the client asks for lobby with since = the seq before the last
	 * seen (the anchor). */
	const joins = ws2.sent.filter((m) => m.type === 'join');
	const byRoom = Object.fromEntries(joins.map((m) => [m.room, m]));
	assert.equal(byRoom.lobby.since, 4);
	assert.equal(byRoom.general.since, 2);
	ws2.recv({ type: 'user_join', room: 'general', user: user('c2',
	    'alice') });
	ws2.recv({ type: 'history', room: 'general', complete: true,
	    messages: [1, 2, 3, 4, 5].map((n) => chatMsg('general', n,
	    'g' + n)) });
	for (const m of joins)
		ws2.recv({ type: 'ack', id: m.id, code: 0 });
	ws2.recv({ type: 'user_join', room: 'lobby', user: user('c2',
	    'alice') });
	ws2.recv({ type: 'history', room: 'lobby', complete: true,
	    messages: [4, 5, 6, 7, 8].map((n) => chatMsg('lobby', n,
	    'l' + n)) });
	ws2.recv(chatMsg('lobby', 9, 'l9'));
	const got = (room) => hist.filter((h) => h.room === room)
	    .flatMap((h) => h.messages.map((m) => m.seq));
	assert.deepEqual(got('general'), [1, 2, 4, 5]);
	assert.deepEqual(got('lobby'), [6, 7, 8]);
	assert.deepEqual(chats, ['lobby:1', 'lobby:2', 'lobby:3', 'lobby:4',
	    'lobby:5', 'general:3', 'lobby:9']);
	const last = hist[hist.length - 1];
	assert.equal(last.resumed, true);
	assert.equal(last.reset, false);
	assert.equal(last.complete, true);
	assert.equal(c.lastSeq('lobby'), 9);
	c.close();
});

test('a room that started over is seen as reset; a gap no longer kept ' +
    'is not complete', async () => {
	const { c, ws } = await online();
	const hist = [];
	c.on('history', (h) => hist.push(h));
	const j = c.join('a');
	ws.recv({ type: 'ack', id: ws.take('join').id, code: 0 });
	await j;
	const j2 = c.join('b');
	ws.recv({ type: 'ack', id: ws.take('join').id, code: 0 });
	await j2;
	for (const room of ['a', 'b']) {
		ws.recv({ type: 'user_join', room, user: user('c1', 'alice') });
		for (let n = 1; n <= 3; n++)
			ws.recv(chatMsg(room, n, 'x'));
	}
	ws.drop(1001);
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	/* a: restarted without a store, now seq 1..4 with new timestamps:
	 * the anchor (seq 3) differs. b: messages 3..20 kept no longer. */
	ws2.recv({ type: 'history', room: 'a', complete: true,
	    messages: [1, 2, 3, 4].map((n) => Object.assign(chatMsg('a', n,
	    'new'), { timestamp: 5000 + n })) });
	ws2.recv({ type: 'history', room: 'b', complete: false,
	    messages: [21, 22].map((n) => chatMsg('b', n, 'y')) });
	assert.equal(hist[0].reset, true);
	assert.deepEqual(hist[0].messages.map((m) => m.seq), [1, 2, 3, 4]);
	assert.equal(hist[1].reset, false);
	assert.equal(hist[1].complete, false);
	assert.deepEqual(hist[1].messages.map((m) => m.seq), [21, 22]);
	c.close();
});

test('getToken is asked for a fresh token at every sign-in', async () => {
	let n = 0;
	const { c, ws } = await online({ token: undefined,
	    getToken: async () => 'fresh-' + (++n) });
	assert.equal(n, 1);
	ws.drop(4001, 'token expired');
	mock.timers.tick(1000);
	await flush();
	await flush();
	const ws2 = FakeWS.all[1];
	ws2.open();
	assert.deepEqual(ws2.take('auth'), { type: 'auth', token: 'fresh-2' });
	c.close();
});

test('a refused token signs out: no retry until auth() gives a new one',
    async () => {
	const { c, ws, states } = await online();
	ws.drop(1006);
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	ws2.open();
	ws2.take('auth');
	ws2.recv({ type: 'auth', code: -1, msg: '认证失败' });
	ws2.drop(4001);
	const s = states[states.length - 1];
	assert.equal(s.state, 'signed-out');
	assert.equal(s.code, 4001);
	mock.timers.tick(600000);
	await flush();
	assert.equal(FakeWS.all.length, 2, 'no attempt while signed out');
	await assert.rejects(c.chat('general', 'x'), (e) =>
	    e.code === 'signed-out');
	const a = c.auth('tok-2');
	await flush();
	assert.equal(FakeWS.all.length, 3);
	const auth = await signIn(FakeWS.all[2], 'c3');
	assert.equal(auth.token, 'tok-2');
	assert.equal((await a).code, 0);
	assert.equal(c.state, 'online');
	c.close();
});

test('requests made offline wait for the sign-in, bounded in time and ' +
    'number', async () => {
	const { c, ws } = await online({ queueMax: 2, timeout: 5000 });
	ws.drop(1006);
	const p1 = c.private('bob', 'one');
	const p2 = c.private('bob', 'two');
	await assert.rejects(c.private('bob', 'three'), (e) =>
	    e.code === 'offline');
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	const sent = ws2.sent.filter((m) => m.type === 'private');
	assert.deepEqual(sent.map((m) => m.content), ['one', 'two']);
	for (const m of sent)
		ws2.recv({ type: 'ack', id: m.id, code: 0 });
	await p1;
	await p2;
	ws2.drop(1006);
	const late = c.private('bob', 'late');
	mock.timers.tick(1000);
	await flush();
	FakeWS.all[2].drop(1006);
	mock.timers.tick(4000);
	await assert.rejects(late, (e) => e.code === 'timeout');
	c.close();
});

test('a silent server is pinged, then given up on', async () => {
	const { c, ws, states } = await online({ quietMs: 10000 });
	mock.timers.tick(10000);
	assert.deepEqual(ws.last(), { type: 'ping' });
	ws.recv({ type: 'pong' });
	mock.timers.tick(19000);
	assert.equal(c.state, 'online', 'the pong counted as word');
	mock.timers.tick(20000);
	assert.equal(c.state, 'offline');
	assert.equal(states[states.length - 1].reason,
	    'no word from the server');
	c.close();
});

test('a request in flight when the link drops is rejected, never resent',
    async () => {
	const { c, ws } = await online();
	const p = c.chat('general', 'maybe');
	ws.take('chat');
	ws.drop(1006);
	await assert.rejects(p, (e) => e.code === 'disconnected');
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	assert.equal(ws2.sent.filter((m) => m.type === 'chat').length, 0);
	c.close();
});

test('with getToken, the client re-authenticates before exp', async () => {
	const jwt = (exp) => 'h.' + Buffer.from(JSON.stringify({ uid: 'alice',
	    exp })).toString('base64url') + '.s';
	const t0 = Math.floor(Date.now() / 1000);
	let n = 0;
	/* quietMs: the fake server sends no pings in these ten minutes. */
	const { c, ws } = await online({ token: undefined, quietMs: 1e9,
	    getToken: async () => jwt(t0 + 600 + 600 * n++) });
	mock.timers.tick(539000);
	await flush();
	assert.equal(ws.sent.filter((m) => m.type === 'auth').length, 0);
	mock.timers.tick(1000);
	await flush();
	await flush();
	const a = ws.take('auth');
	assert.equal(a.token, jwt(t0 + 1200));
	assert.ok(a.id !== undefined);
	ws.recv({ type: 'auth', id: a.id, code: 0, clientId: 'c1',
	    userId: 'alice' });
	assert.equal(c.state, 'online');
	c.close();
});

test('clients/js/vkws.js is web/vkws.js, byte for byte', () => {
	const a = fs.readFileSync(path.join(ROOT, 'web', 'vkws.js'));
	const b = fs.readFileSync(path.join(ROOT, 'clients', 'js', 'vkws.js'));
	assert.ok(a.equals(b), 'run: make clients/js/vkws.js');
});

test('a socket that errs without a close event, or never opens, is ' +
    'retried', async () => {
	const c = connect('ws://test/ws', { WebSocket: FakeWS, token: 't',
	    random: () => 0, connectTimeout: 5000 });
	const states = [];
	c.on('state', (s) => states.push(s));
	await flush();
	/* Node 20's WebSocket on a refused connection: error, no close. */
	FakeWS.all[0].onerror({});
	assert.equal(c.state, 'offline');
	assert.equal(states[states.length - 1].reason, 'connection failed');
	mock.timers.tick(500);
	await flush();
	assert.equal(FakeWS.all.length, 2);
	/* A connection that hangs before open. */
	mock.timers.tick(4999);
	assert.equal(c.state, 'connecting');
	mock.timers.tick(1);
	assert.equal(c.state, 'offline');
	mock.timers.tick(1000);
	await flush();
	assert.equal(FakeWS.all.length, 3);
	c.close();
});

test('server API broadcasts come as events of their own type', async () => {
	const { c, ws } = await online();
	const got = [];
	c.on('notification', (m) => got.push(m.content));
	c.on('state', (s) => got.push('state:' + s.state));
	c.on('message', (m) => got.push('message:' + m.type));
	ws.recv({ type: 'notification', content: 'noon' });
	ws.recv({ type: 'state', state: 'forged' });
	assert.deepEqual(got, ['message:notification', 'noon',
	    'message:state']);
	c.close();
});

test('joins made offline or cut off by a drop are sent at the next ' +
    'sign-in and settled by its ack', async () => {
	const { c, ws } = await online();
	const a = c.join('a');
	ws.take('join');
	ws.drop(1006);
	const b = c.join('b');
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	const joins = ws2.sent.filter((m) => m.type === 'join');
	assert.deepEqual(joins.map((m) => m.room).sort(), ['a', 'b'],
	    'each room once');
	for (const m of joins)
		ws2.recv({ type: 'ack', id: m.id, code: m.room === 'a' ? 0 : -5,
		    msg: 'limit reached' });
	assert.deepEqual(await a, { code: 0 });
	await assert.rejects(b, (e) => e.code === -5);
	assert.deepEqual(c.joinedRooms(), ['a']);
	c.close();
});

test('a rejoin refused is reported; a room left stays left', async () => {
	const { c, ws } = await online();
	const failed = [];
	c.on('rejoin_failed', (f) => failed.push(f));
	ws.recv({ type: 'user_join', room: 'general', user: user('c1',
	    'alice') });
	ws.recv({ type: 'user_join', room: 'gone', user: user('c1',
	    'alice') });
	const l = c.leave('general');
	ws.recv({ type: 'ack', id: ws.take('leave').id, code: 0 });
	await l;
	ws.drop(1006);
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	const j = ws2.take('join');
	assert.equal(j.room, 'gone');
	assert.equal(ws2.sent.filter((m) => m.type === 'join').length, 0);
	/* The server puts every client in the default room at sign-in:
	 * the library leaves it again. */
	ws2.recv({ type: 'user_join', room: 'general', user: user('c2',
	    'alice') });
	assert.equal(ws2.take('leave').room, 'general');
	ws2.recv({ type: 'ack', id: j.id, code: -3, msg: 'not found' });
	assert.deepEqual(failed, [{ room: 'gone', code: -3,
	    msg: 'not found' }]);
	assert.deepEqual(c.joinedRooms(), []);
	c.close();
});

test('leave() offline resolves at once and the room is not rejoined',
    async () => {
	const { c, ws } = await online();
	for (const room of ['a', 'b'])
		ws.recv({ type: 'user_join', room, user: user('c1', 'alice') });
	ws.drop(1006);
	assert.deepEqual(await c.leave('a'), { code: 0 });
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	assert.deepEqual(ws2.sent.filter((m) => m.type === 'join').map((m) =>
	    m.room), ['b']);
	assert.equal(ws2.sent.filter((m) => m.type === 'leave').length, 0);
	c.close();
});

test('a message that comes in the history and again live is delivered ' +
    'once', async () => {
	const { c, ws } = await online();
	const got = [];
	c.on('chat', (m) => got.push('live ' + m.seq));
	c.on('history', (h) => h.messages.forEach((m) => got.push('hist ' +
	    m.seq)));
	ws.recv({ type: 'user_join', room: 'r', user: user('c1', 'alice') });
	ws.recv({ type: 'history', room: 'r', complete: true,
	    messages: [1, 2].map((n) => chatMsg('r', n, 'x')) });
	/* The server sent seq 2 live too (a join in the same instant as
	 * the chat): shown once. */
	ws.recv(chatMsg('r', 2, 'x'));
	ws.recv(chatMsg('r', 3, 'x'));
	/* The room started over: seq 1 again, another message. */
	ws.recv(Object.assign(chatMsg('r', 1, 'new'), { timestamp: 9999 }));
	assert.deepEqual(got, ['hist 1', 'hist 2', 'live 3', 'live 1']);
	c.close();
});

test('a history without since that reaches back to the last seq seen is ' +
    'complete, whatever the room dropped before', async () => {
	const { c, ws } = await online();
	const hist = [];
	c.on('history', (h) => hist.push(h));
	ws.recv({ type: 'user_join', room: 'general', user: user('c1',
	    'alice') });
	for (let n = 1; n <= 60; n++)
		ws.recv(chatMsg('general', n, 'x'));
	ws.drop(1006);
	mock.timers.tick(1000);
	await flush();
	const ws2 = FakeWS.all[1];
	await signIn(ws2, 'c2');
	/* The default room's replay at sign-in: the last 50 of 70. */
	const last50 = [];
	for (let n = 21; n <= 70; n++)
		last50.push(chatMsg('general', n, 'x'));
	ws2.recv({ type: 'history', room: 'general', complete: false,
	    messages: last50 });
	assert.equal(hist[0].complete, true);
	assert.deepEqual(hist[0].messages.map((m) => m.seq), [61, 62, 63, 64,
	    65, 66, 67, 68, 69, 70]);
	c.close();
});
