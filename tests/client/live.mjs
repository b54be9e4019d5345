/*
 * live.mjs: web/vkws.js in Node against a real vkws started by
 * tests/test_client_js.py (no restarts here; resume.mjs does those).
 * Checks, against the server rather than a fake socket:
 *
 * - the promise methods: acks resolve, refusals reject with the codes of
 *   PROTOCOL.md 5 (-3 private to nobody, -4 chat in a room one is not
 *   in, -2 a room name too long), chat() resolves with the seq the other
 *   members see;
 * - a refused token: state signed-out, no further attempt, requests
 *   rejected at once; auth() with a good token brings it online;
 * - token refresh: with getToken handing out 3-second tokens the client
 *   re-authenticates in place before each expires: the connection (its
 *   clientId) outlives several tokens, never closed with 4001.
 *
 * VKWS_LIVE (JSON): base, bin (the vkws binary, for `vkws token`),
 * secret. Exit 0 only if every check passed.
 */
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';

import { connect, VkwsError } from '../../web/vkws.js';

const cfg = JSON.parse(process.env.VKWS_LIVE);
const url = cfg.base.replace(/^http/, 'ws') + '/ws';
const T = 15000;

/* Long tokens from `vkws token`; the short ones of refresh() are
 * signed here (HS256, PROTOCOL.md 2), as an application's token service
 * would, so that they are fresh when handed out however slow the binary
 * starts (an ASan build takes seconds). */
function token(uid) {
	return execFileSync(cfg.bin, ['token', '--uid', uid, '--secret',
	    cfg.secret, '--ttl', '3600', '--info',
	    JSON.stringify({ name: uid.toUpperCase() })]).toString().trim();
}

function shortToken(uid, ttl) {
	const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
	const head = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ uid,
	    exp: Math.floor(Date.now() / 1000) + ttl });
	return head + '.' + createHmac('sha256', cfg.secret).update(head)
	    .digest('base64url');
}

function check(cond, what) {
	if (!cond)
		throw new Error('check failed: ' + what);
	process.stdout.write('ok: ' + what + '\n');
}

async function until(what, fn, ms) {
	const end = Date.now() + (ms || T);
	while (!fn()) {
		if (Date.now() > end)
			throw new Error('timed out waiting for ' + what);
		await new Promise((r) => setTimeout(r, 20));
	}
}

async function code(p) {
	try {
		await p;
		return 'resolved';
	} catch (e) {
		return e instanceof VkwsError ? e.code : String(e);
	}
}

async function requests() {
	const a = connect(url, { token: token('ann') });
	const b = connect(url, { token: token('ben') });
	await until('both online', () => a.state === 'online' &&
	    b.state === 'online');
	await a.join('live');
	await b.join('live');
	const seen = [];
	b.on('chat', (m) => {
		if (m.room === 'live')
			seen.push([m.seq, m.message, m.from.userInfo.name]);
	});
	const r1 = await a.chat('live', 'one');
	const r2 = await a.chat('live', 'two');
	check(r1.seq === 1 && r2.seq === 2, 'chat() resolves with seq ' +
	    r1.seq + ', ' + r2.seq);
	await until('ben sees both', () => seen.length === 2);
	check(JSON.stringify(seen) === '[[1,"one","ANN"],[2,"two","ANN"]]',
	    'ben got them with the same seq');
	check(await code(a.private('nobody', 'x')) === -3,
	    'private to a user with no connection: -3');
	check(await code(b.chat('elsewhere', 'x')) === -3,
	    'chat to a room that does not exist: -3');
	await b.join('other');
	await b.leave('other');
	await a.join('other');
	check(await code(b.chat('other', 'x')) === -4,
	    'chat in a room one is not in: -4');
	check(await code(a.join('x'.repeat(500))) === -2,
	    'a room name too long: -2');
	const p = await code(a.private('ben', 'psst'));
	check(p === 'resolved', 'private to ben resolves on its ack');
	a.close();
	b.close();
}

async function refused() {
	const states = [];
	let sockets = 0;
	class Counting extends WebSocket {
		constructor(...args) {
			super(...args);
			sockets++;
		}
	}
	const bad = token('cat').slice(0, -4) + 'AAAA';
	const c = connect(url, { token: bad, WebSocket: Counting,
	    backoffMin: 50 });
	c.on('state', (s) => states.push(s));
	await until('signed out', () => c.state === 'signed-out');
	const s = states[states.length - 1];
	check(s.code === 4001, 'a refused token: signed-out after close ' +
	    s.code + ' (' + s.msg + ')');
	await new Promise((r) => setTimeout(r, 500));
	check(sockets === 1, 'no new attempt while signed out (' + sockets +
	    ' socket in 0.5 s at backoffMin 50 ms)');
	check(await code(c.chat('general', 'x')) === 'signed-out',
	    'a request while signed out is rejected at once');
	const reply = await c.auth(token('cat'));
	check(reply.code === 0 && c.state === 'online' && sockets === 2,
	    'auth() with a good token signs in again');
	c.close();
}

async function refresh() {
	let asked = 0;
	const states = [];
	const c = connect(url, { getToken: () => {
		asked++;
		return shortToken('dan', 3);
	} });
	const t0 = Date.now();
	c.on('state', (s) => states.push(s.state + (s.code ? ' ' + s.code : '') +
	    ' at ' + (Date.now() - t0) + ' ms'));
	c.on('auth', (m) => states.push('auth ' + m.code + ' at ' +
	    (Date.now() - t0) + ' ms'));
	await until('online', () => c.state === 'online');
	const id = c.clientId;
	/* Three 3-second tokens' worth; exp is in whole seconds. */
	await new Promise((r) => setTimeout(r, 7000));
	check(c.state === 'online' && c.clientId === id,
	    'the connection outlived its first token (' + asked +
	    ' tokens asked for, clientId unchanged): ' + states.join(', '));
	check(asked >= 3 && !states.includes('offline'),
	    'it re-authenticated in place each time, never dropped');
	const r = await c.chat('general', 'still here');
	check(typeof r.seq === 'number', 'and still chats');
	c.close();
}

try {
	await requests();
	await refused();
	await refresh();
	process.stdout.write('== all checks passed\n');
	process.exit(0);
} catch (e) {
	process.stderr.write('FAILED: ' + (e.stack || e) + '\n');
	process.exit(1);
}
