/*
 * resume.mjs: web/vkws.js against a real vkws, killed and restarted in
 * the middle of a chat. Two receivers (alice, carol) run the library as
 * the server serves it (/vkws.js): in Node (mode "node"), or inside
 * headless Chromium pages (mode "chromium", driven by playwright-core).
 * A sender (bob, the library in Node) writes numbered messages to two
 * rooms without pause: the default room and a persistent room made with
 * the server API. Meanwhile the Python side (tests/test_client_js.py)
 * kills the server with SIGKILL, starts it again, stops it with SIGTERM
 * (server_shutdown) and starts it again, on the same port and --data-dir.
 *
 * Checked at the end: each receiver saw, in each room, every message
 * once and in seq order (seq up by one each time, no repeat, no gap),
 * and every message the sender's chat() resolved is there under the seq
 * it resolved with.
 *
 * Line protocol with Python: "@@ kill", "@@ stop", "@@ start" on stdout,
 * "ok ..." or "error: ..." back on stdin. Every wait has a deadline.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import url from 'node:url';
import { ask, check, launchChromium, say } from './harness.mjs';

const cfg = JSON.parse(process.env.VKWS_CLIENT);
const base = cfg.base;
const wsBase = base.replace(/^http/, 'ws') + '/ws';
const ROOMS = ['general', 'resume'];
const PER_PHASE = 15;		/* messages between two restarts */
const T = 60000;		/* ms: deadline of one wait */

async function until(what, fn, ms) {
	const end = Date.now() + (ms || T);
	for (;;) {
		if (await fn())
			return;
		if (Date.now() > end)
			throw new Error('timed out waiting for ' + what);
		await new Promise((r) => setTimeout(r, 50));
	}
}

async function api(method, params) {
	const r = await fetch(base + '/api', {
		method: 'POST',
		headers: { 'Authorization': 'apikey ' + cfg.apiKey },
		body: JSON.stringify({ method, params: params || {} }),
		signal: AbortSignal.timeout(5000)
	});
	return r.json();
}

/*
 * The receiver: the library as an application uses it. Runs in Node or
 * in a page (it is passed to page.evaluate as source): everything it
 * needs comes in arg. It keeps, per room, the messages in the order the
 * library delivered them (live chat and history gaps alike).
 */
async function receiver(arg) {
	const lib = arg.libObj || await import(arg.lib);
	const rx = { rooms: {}, states: [], online: false, errors: [],
	    gap: 0 };
	for (const r of arg.rooms)
		rx.rooms[r] = [];
	const c = lib.connect(arg.url, { token: arg.token,
	    backoffMin: 1000, backoffMax: 4000 });
	const put = (m) => {
		if (rx.rooms[m.room])
			rx.rooms[m.room].push([m.seq, m.message]);
	};
	rx.trace = [];
	c.on('chat', (m) => {
		rx.trace.push('L ' + m.room + ' ' + m.seq + ' ' + m.timestamp);
		put(m);
	});
	c.on('history', (h) => {
		rx.trace.push('H ' + h.room + ' [' + h.messages.map((m) =>
		    m.seq + '@' + m.timestamp) + '] raw [' + h.raw.messages.map(
		    (m) => m.seq + '@' + m.timestamp) + '] complete ' +
		    h.raw.complete);
		if (h.reset)
			rx.errors.push('reset in ' + h.room);
		if (!h.complete)
			rx.errors.push('incomplete history in ' + h.room);
		if (h.resumed)
			rx.gap += h.messages.length;
		h.messages.forEach(put);
	});
	c.on('state', (s) => {
		rx.trace.push('S ' + s.state + ' ' + (s.code || ''));
		rx.states.push(s.state);
		rx.online = s.state === 'online';
	});
	c.on('rejoin_failed', (f) => rx.errors.push('rejoin ' + f.room +
	    ' ' + f.code));
	rx.client = c;
	return rx;
}

/* ---- Receivers in Node or in Chromium ---------------------------------- */

let browser = null;
let libDir = null;	/* where Node's copy of /vkws.js is */

async function chromiumReceiver(name) {
	const ctx = await browser.newContext({ ignoreHTTPSErrors: !!cfg.tls });
	const page = await ctx.newPage();
	const problems = [];
	page.on('pageerror', (e) => problems.push(e.message));
	/* The chat page: same origin, so its policy lets /vkws.js and /ws
	 * in. Without a token in its address it opens no connection. */
	await page.goto(base + '/', { waitUntil: 'load' });
	await page.evaluate(async ([src, arg]) => {
		/* eslint-disable-next-line no-new-func */
		const make = new Function('return (' + src + ')')();
		window.__rx = await make(arg);
	}, [receiver.toString(), { lib: '/vkws.js', url: '/ws',
	    token: cfg.tokens[name], rooms: ROOMS }]);
	return {
		name,
		snap: async () => {
			const s = await page.evaluate(() => ({
				rooms: window.__rx.rooms,
				online: window.__rx.online,
				states: window.__rx.states,
				errors: window.__rx.errors,
				gap: window.__rx.gap,
				trace: window.__rx.trace
			}));
			s.errors = s.errors.concat(problems);
			return s;
		},
		join: (room) => page.evaluate((r) => window.__rx.client.join(r)
		    .then(() => true), room),
		close: () => ctx.close()
	};
}

/* ---- The scenario ------------------------------------------------------ */

async function run() {
	/* The library as this server serves it. */
	const lib = await import(base + '/vkws.js').catch(async () => {
		/* Node imports http: URLs only with a flag; fetch it into a
		 * file (not a data: URL, whose whole text would be the
		 * name of every frame of a stack trace). */
		const text = await (await fetch(base + '/vkws.js')).text();
		libDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vkws-'));
		const file = path.join(libDir, 'vkws.js');
		fs.writeFileSync(file, text);
		return import(url.pathToFileURL(file).href);
	});
	check(typeof lib.connect === 'function', 'the server serves ' +
	    '/vkws.js and it loads as a module in Node');

	const made = await api('createRoom', { room: 'resume',
	    persistent: true });
	check(made.code === 0, 'persistent room "resume" made');

	const open = cfg.mode === 'chromium' ? chromiumReceiver :
	    (name) => nodeReceiver(lib, name);
	const rxs = [await open('alice'), await open('carol')];
	for (const r of rxs) {
		await until(r.name + ' online', async () =>
		    (await r.snap()).online);
		await r.join('resume');
	}
	/* bob returns sooner than the receivers (backoffMin 1000) and
	 * writes while they are away: they catch up from history. */
	const bob = lib.connect(wsBase, { token: cfg.tokens.bob,
	    backoffMin: 100, backoffMax: 1000 });
	await until('bob online', () => bob.state === 'online');
	await bob.join('resume');
	check(true, 'alice and carol (' + cfg.mode + ') and bob (node) ' +
	    'are in general and resume');

	/* bob writes without pause; a chat refused because the server is
	 * away is written again, as an application would. */
	const sent = [];		/* [room, seq, text] resolved */
	let n = 0;
	let stopping = false;
	let broke = null;
	/* A room keeps the last VKWS_HISTORY (50) messages: a receiver
	 * away longer than that would rightly get "complete": false. So
	 * after a restart bob writes at most AWAY messages, then waits
	 * until both receivers have come back. */
	const AWAY = 20;
	let awayLeft = Infinity;
	let statesBefore = null;	/* per receiver, at the restart */
	const back = async () => {
		for (let i = 0; i < rxs.length; i++) {
			const s = await rxs[i].snap();
			if (!s.online ||
			    !s.states.slice(statesBefore[i]).includes('online'))
				return false;
		}
		return true;
	};
	const restart = async (how) => {
		statesBefore = [];
		for (const r of rxs)
			statesBefore.push((await r.snap()).states.length);
		await ask(how);
		if (how === 'kill')
			await new Promise((r) => setTimeout(r, 300));
		awayLeft = AWAY;
		await ask('start');
	};
	const writer = (async () => {
		while (!stopping) {
			if (awayLeft <= 0) {
				await until('the receivers back', back);
				awayLeft = Infinity;
			}
			const room = ROOMS[n % 2];
			const text = 'm' + n;
			try {
				const r = await bob.chat(room, text);
				if (r.seq !== null)
					sent.push([room, r.seq, text]);
				n++;
				awayLeft--;
				/* under --rate (50 a second) */
				await new Promise((r) => setTimeout(r, 25));
			} catch (e) {
				/* -6: over the rate all the same (timers
				 * bunch up on a loaded machine): slow down,
				 * as an application would. */
				if (typeof e.code === 'number' && e.code !== -6) {
					broke = e;
					return;
				}
				await new Promise((r) => setTimeout(r, 50));
			}
		}
	})().catch((e) => {
		broke = e;
	});
	const after = async (k) => {
		const goal = n + k;
		await until(k + ' more messages', () => {
			if (broke)
				throw new Error('bob: ' + broke.message);
			return n >= goal;
		});
	};

	await after(PER_PHASE);
	say('== kill -9 the server mid-chat');
	await restart('kill');
	await after(PER_PHASE);
	say('== SIGTERM (server_shutdown), then start again');
	await restart('stop');
	await after(PER_PHASE);
	stopping = true;
	await writer;
	if (broke)
		throw new Error('bob: ' + broke.message);
	const last = {};
	for (const [room, seq] of sent)
		last[room] = Math.max(last[room] || 0, seq);
	for (const r of rxs) {
		await until(r.name + ' has every message', async () => {
			const s = await r.snap();
			return ROOMS.every((room) => s.rooms[room].some((m) =>
			    m[0] === last[room]));
		});
	}

	for (const r of rxs) {
		const s = await r.snap();
		if (process.env.VKWS_CLIENT_TRACE || s.errors.length)
			say(r.name + ' trace:\n  ' + s.trace.join('\n  '));
		check(s.errors.length === 0, r.name + ': no reset, gap or ' +
		    'error' + (s.errors.length ? ': ' + s.errors.join('; ') :
		    ''));
		for (const room of ROOMS) {
			const seqs = s.rooms[room].map((m) => m[0]);
			const bad = seqs.findIndex((q, i) => i > 0 &&
			    q !== seqs[i - 1] + 1);
			check(bad < 0, r.name + ' #' + room + ': ' +
			    seqs.length + ' messages, seq ' + seqs[0] + '..' +
			    seqs[seqs.length - 1] + ', each once, in order' +
			    (bad >= 0 ? ' (not at ' + bad + ': ' +
			    seqs.slice(Math.max(0, bad - 3), bad + 3) + ')' :
			    ''));
			const bySeq = new Map(s.rooms[room]);
			const lost = sent.filter(([rm, q, text]) => rm === room &&
			    bySeq.get(q) !== text);
			check(lost.length === 0, r.name + ' #' + room +
			    ': every message bob sent is there under its seq' +
			    (lost.length ? ' (missing ' + JSON.stringify(
			    lost.slice(0, 5)) + ')' : ''));
		}
		const drops = s.states.filter((x) => x === 'offline').length;
		check(drops >= 1, r.name + ' went offline ' + drops +
		    ' times and came back; ' + s.gap + ' messages ' +
		    'came in history replies after a reconnect');
	}
	check(sent.length >= 3 * PER_PHASE, 'bob sent ' + sent.length +
	    ' messages across two restarts');
	bob.close();
	for (const r of rxs)
		await r.close();
}

/* A Node receiver on the module the server served. */
async function nodeReceiver(lib, name) {
	const rx = await receiver({ libObj: lib, url: wsBase,
	    token: cfg.tokens[name], rooms: ROOMS });
	return {
		name,
		snap: async () => ({ rooms: rx.rooms, online: rx.online,
		    states: rx.states, errors: rx.errors, gap: rx.gap,
		    trace: rx.trace }),
		join: (room) => rx.client.join(room),
		close: async () => rx.client.close()
	};
}

let rc = 0;
try {
	if (cfg.mode === 'chromium')
		browser = await launchChromium(cfg.chromium);
	await run();
	say('== all checks passed');
} catch (e) {
	process.stderr.write('FAILED: ' + (e.message || e) + '\n' +
	    (e.stack || '') + '\n');
	rc = 1;
} finally {
	if (browser)
		await browser.close();
	if (libDir)
		fs.rmSync(libDir, { recursive: true, force: true });
}
process.exit(rc);
