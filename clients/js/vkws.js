/*
 * vkws.js: the client library of vkws (PROTOCOL.md sections 2, 3, 5 and 7),
 * one ES module without dependencies, for browsers and Node.
 *
 *	import { connect } from './vkws.js';
 *	const c = connect('wss://host/ws', { getToken: fetchToken });
 *	c.on('chat', (m) => console.log(m.room, m.seq, m.message));
 *	await c.join('lobby');
 *	const { seq } = await c.chat('lobby', 'hello');
 *
 * What it does for its user: signs in with the first message (the token
 * stays out of URLs and access logs), answers the server's JSON ping,
 * turns requests into promises settled by the ack with their id, and
 * reconnects after any drop with exponential backoff and jitter (or after
 * server_shutdown's reconnectIn). On every reconnect it signs in again
 * (asking getToken for a fresh token) and joins every room it was in
 * again with `since`, so the messages sent meanwhile arrive once each and
 * in seq order. A refused token (close 4001 after a refused sign-in)
 * stops retrying until auth() gives a new one.
 *
 * What it never does: send a request twice (a chat is never repeated on
 * its own: its promise is rejected and the caller decides), touch the
 * DOM, or keep more than a bounded queue of requests made while offline.
 * web/vkws.js is the one source; clients/js/vkws.js is a copy that
 * `make clients/js/vkws.js` refreshes and tests/client/unit.test.mjs
 * checks byte for byte.
 */

export const VERSION = '1.0.0';

/* Defaults of connect()'s options; every one may be given. */
const DEFAULTS = {
	/* Reconnect backoff: attempt n waits a random time in
	 * [b/2, b), b = min(backoffMax, backoffMin * 2^n), so that clients
	 * dropped together do not return together. */
	backoffMin: 1000,
	backoffMax: 30000,
	/* ms: a request not answered by then is rejected ('timeout'). A
	 * request made while offline waits for the connection within the
	 * same time. */
	timeout: 15000,
	/* Requests kept while offline; one more is rejected at once. */
	queueMax: 256,
	/* ms: a socket not open by then is given up (and retried). */
	connectTimeout: 15000,
	/* Silence from the server (it pings every 30 s by default) this
	 * long: send a ping; twice this long: the link is dead, reconnect. */
	quietMs: 45000,
	/* Re-authenticate this long before the token's exp (when getToken
	 * is given and the token is a JWT with exp). */
	refreshBefore: 60000,
	/* The most of server_shutdown's reconnectIn that is honoured. */
	shutdownMax: 60000,
	protocols: ['vkws.json']
};

/* Messages remembered per room (seq and timestamp) to recognise one
 * that comes a second time. */
const RECENT_MAX = 256;

/* Close codes of PROTOCOL.md 5 that the library acts on. */
const CLOSE_AUTH = 4001;

/*
 * The error a promise is rejected with. code is a number of PROTOCOL.md 5
 * for a refusal by the server (-1 ... -7), or a string for what happened
 * here: 'timeout' (no answer in time), 'offline' (the offline queue is
 * full), 'disconnected' (the connection dropped before the answer),
 * 'signed-out' (no valid token), 'closed' (close() was called), 'invalid'
 * (a bad argument, nothing was sent).
 */
export class VkwsError extends Error {
	constructor(code, msg) {
		super(String(msg) + ' (' + code + ')');
		this.name = 'VkwsError';
		this.code = code;
		this.msg = String(msg);
	}
}

function isObj(v) {
	return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function now() {
	return Date.now();
}

/* The exp claim (ms) of a JWT, or 0. */
function tokenExp(token) {
	try {
		const part = String(token).split('.')[1];
		let b = part.replace(/-/g, '+').replace(/_/g, '/');
		while (b.length % 4)
			b += '=';
		const text = typeof atob === 'function' ? atob(b) :
		    globalThis.Buffer.from(b, 'base64').toString('binary');
		const claims = JSON.parse(text);
		return typeof claims.exp === 'number' ? claims.exp * 1000 : 0;
	} catch (e) {
		return 0;
	}
}

/* A ws: or wss: URL from what the caller gave: ws(s) as is, http(s)
 * turned into ws(s), a path resolved against the page. */
function wsUrl(url) {
	const s = String(url);
	if (/^wss?:/i.test(s))
		return s;
	if (/^https?:/i.test(s))
		return s.replace(/^http/i, 'ws');
	if (typeof location !== 'undefined') {
		const u = new URL(s, location.href);
		u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
		return u.href;
	}
	throw new VkwsError('invalid', 'not a WebSocket URL: ' + s);
}

function report(e) {
	if (typeof reportError === 'function')
		reportError(e);
	else
		console.error(e);
}

export class Client {
	constructor(url, opts) {
		opts = opts || {};
		this.url = wsUrl(url);
		this.opts = Object.assign({}, DEFAULTS, opts);
		this.WebSocket = opts.WebSocket || globalThis.WebSocket;
		if (typeof this.WebSocket !== 'function')
			throw new TypeError('vkws: no WebSocket here; pass ' +
			    'connect(url, { WebSocket })');
		this.token = typeof opts.token === 'string' ? opts.token : '';
		this.getToken = typeof opts.getToken === 'function' ?
		    opts.getToken : null;
		this.random = opts.random || Math.random;
		this.state = 'connecting';
		this.clientId = '';
		this.userId = '';
		this.attempt = 0;	/* failed attempts since the last sign-in */
		this.ws = null;
		this.nextId = 1;
		this.pending = new Map();	/* id -> request */
		this.queue = [];		/* requests made while offline */
		this.rooms = new Map();		/* name -> room */
		this.listeners = new Map();	/* event -> Set of functions */
		this.authWait = [];		/* auth() callers while offline */
		this.nextToken = '';		/* auth(token) given offline */
		this.timers = { retry: 0, live: 0, refresh: 0 };
		this.shutdownIn = -1;
		this.refused = null;	/* the refused sign-in of this socket */
		this.closed = false;
		this.lastRx = 0;
		this.pinged = false;
		/* After the caller had a chance to add listeners. */
		Promise.resolve().then(() => this.open());
	}

	/* ---- Events -------------------------------------------------- */

	/* fn(payload) for every event of that type; returns a function
	 * that removes it. */
	on(type, fn) {
		if (!this.listeners.has(type))
			this.listeners.set(type, new Set());
		this.listeners.get(type).add(fn);
		return () => this.off(type, fn);
	}

	off(type, fn) {
		const s = this.listeners.get(type);
		if (s)
			s.delete(fn);
	}

	once(type, fn) {
		const off = this.on(type, (v) => {
			off();
			fn(v);
		});
		return off;
	}

	emit(type, v) {
		const s = this.listeners.get(type);
		if (!s)
			return;
		for (const fn of Array.from(s)) {
			try {
				fn(v);
			} catch (e) {
				report(e);
			}
		}
	}

	setState(state, extra) {
		this.state = state;
		this.emit('state', Object.assign({ state }, extra || {}));
	}

	/* ---- Requests ------------------------------------------------ */

	/* Join room; resolves when the server acks (the user_list and
	 * history events follow). opts.since: replay messages after it. */
	join(room, opts) {
		if (typeof room !== 'string' || room === '')
			return Promise.reject(new VkwsError('invalid',
			    'room must be a non-empty string'));
		const r = this.room(room);
		r.wanted = true;
		r.left = false;
		const since = opts && typeof opts.since === 'number' ?
		    opts.since : -1;
		if (since >= 0 && r.lastSeq === 0)
			r.lastSeq = since;
		return this.request(() => this.joinMsg(r, since), 'join', room);
	}

	/* Leave room; it is not joined again on reconnect. Offline, this
	 * resolves at once: the rejoin leaves the room out (and leaves the
	 * default room again when the server puts the client back in it). */
	leave(room) {
		const r = this.rooms.get(room);
		if (r) {
			r.wanted = false;
			r.left = true;
		}
		if (this.state === 'connecting' || this.state === 'offline') {
			for (const q of this.queue.filter((x) => x.kind ===
			    'join' && x.room === room))
				this.fail(q, new VkwsError('invalid',
				    'left before it was joined'));
			return Promise.resolve({ code: 0 });
		}
		return this.request({ type: 'leave', room }, 'leave');
	}

	/* Resolves with { seq, timestamp } of the stored message: the ack
	 * carries no seq, the sender's own copy that follows it does
	 * (PROTOCOL.md 7). */
	chat(room, text) {
		if (typeof room !== 'string' || typeof text !== 'string')
			return Promise.reject(new VkwsError('invalid',
			    'chat(room, text) takes two strings'));
		return this.request({ type: 'chat', room, content: text },
		    'chat', room);
	}

	private(userId, text) {
		if (typeof userId !== 'string' || typeof text !== 'string')
			return Promise.reject(new VkwsError('invalid',
			    'private(userId, text) takes two strings'));
		return this.request({ type: 'private', targetUserId: userId,
		    content: text }, 'private');
	}

	/* A new token: re-authenticates the open connection, or, offline
	 * or signed out, is the token of the next sign-in. Resolves with
	 * the server's auth reply. */
	auth(token) {
		if (typeof token !== 'string' || token === '')
			return Promise.reject(new VkwsError('invalid',
			    'auth(token) takes a token'));
		if (this.state === 'closed')
			return Promise.reject(new VkwsError('closed',
			    'the client was closed'));
		if (!this.getToken)
			this.token = token;
		if (this.state === 'online')
			return this.request({ type: 'auth', token }, 'auth');
		this.nextToken = token;
		const p = new Promise((resolve, reject) => {
			const w = { resolve, reject, timer: 0 };
			w.timer = setTimeout(() => {
				this.authWait.splice(this.authWait.indexOf(w), 1);
				reject(new VkwsError('timeout', 'not signed in ' +
				    'within ' + this.opts.timeout + ' ms'));
			}, this.opts.timeout);
			this.authWait.push(w);
		});
		if (this.state === 'signed-out') {
			this.attempt = 0;
			this.open();
		} else if (this.state === 'offline') {
			this.reconnectNow();
		}
		return p;
	}

	/* Settle every auth() waiting for the sign-in. */
	authSettle(ok, v) {
		for (const w of this.authWait.splice(0)) {
			clearTimeout(w.timer);
			if (ok)
				w.resolve(v);
			else
				w.reject(v);
		}
	}

	/* Any message with an id; resolves with the ack. */
	send(msg) {
		if (!isObj(msg) || typeof msg.type !== 'string')
			return Promise.reject(new VkwsError('invalid',
			    'send() takes an object with a type'));
		return this.request(Object.assign({}, msg), 'other');
	}

	/*
	 * One request. msg is the message, or a function that makes it when
	 * it is sent (a join computes its since then). Online, it goes out
	 * at once; offline, it waits in the queue until the next sign-in,
	 * within opts.timeout either way.
	 */
	request(msg, kind, room) {
		if (this.state === 'signed-out' || this.state === 'closed')
			return Promise.reject(new VkwsError(this.state,
			    this.state === 'closed' ? 'the client was closed' :
			    'signed out: give a new token with auth()'));
		return new Promise((resolve, reject) => {
			const q = { msg, kind, room, resolve, reject, id: 0,
			    timer: 0 };
			q.timer = setTimeout(() => this.fail(q,
			    new VkwsError('timeout', 'no answer in ' +
			    this.opts.timeout + ' ms')), this.opts.timeout);
			if (this.state === 'online') {
				this.transmit(q);
			} else if (this.queue.length >= this.opts.queueMax) {
				this.fail(q, new VkwsError('offline',
				    'offline, and ' + this.opts.queueMax +
				    ' requests wait already'));
			} else {
				this.queue.push(q);
			}
		});
	}

	transmit(q) {
		const m = typeof q.msg === 'function' ? q.msg() : q.msg;
		q.id = this.nextId++;
		m.id = q.id;
		this.pending.set(q.id, q);
		this.raw(m);
	}

	/* Settle q once, wherever it is. */
	fail(q, err) {
		this.forget(q);
		q.reject(err);
	}

	done(q, v) {
		this.forget(q);
		q.resolve(v);
	}

	forget(q) {
		clearTimeout(q.timer);
		if (q.id)
			this.pending.delete(q.id);
		const i = this.queue.indexOf(q);
		if (i >= 0)
			this.queue.splice(i, 1);
		if (q.room !== undefined) {
			const r = this.rooms.get(q.room);
			const j = r ? r.own.indexOf(q) : -1;
			if (j >= 0)
				r.own.splice(j, 1);
		}
	}

	raw(m) {
		if (!this.ws || this.ws.readyState !== 1)
			return false;
		this.ws.send(JSON.stringify(m));
		return true;
	}

	/* ---- Rooms --------------------------------------------------- */

	room(name) {
		let r = this.rooms.get(name);
		if (!r) {
			r = { name, wanted: false, left: false, joined: false,
			    lastSeq: 0, lastTs: 0, own: [], recent: new Map() };
			this.rooms.set(name, r);
		}
		return r;
	}

	/* Rooms this client is in, or will join again on reconnect. */
	joinedRooms() {
		return Array.from(this.rooms.values()).filter((r) =>
		    r.wanted).map((r) => r.name);
	}

	/* The last seq seen in room, 0 if none. */
	lastSeq(room) {
		const r = this.rooms.get(room);
		return r ? r.lastSeq : 0;
	}

	/*
	 * The join message for r. On a rejoin, since is the seq before the
	 * last one seen: the history then starts with that last message
	 * itself, an anchor that shows whether the room is the one seen
	 * (same seq, same timestamp) or one that started over (a restart
	 * without --data-dir, or deleted and made again, PROTOCOL.md 7).
	 */
	joinMsg(r, since) {
		const m = { type: 'join', room: r.name };
		const s = since >= 0 ? since : r.lastSeq - 1;
		if (s > 0)
			m.since = s;
		return m;
	}

	/* ---- Connection ---------------------------------------------- */

	async open() {
		clearTimeout(this.timers.retry);
		this.timers.retry = 0;
		if (this.closed)
			return;
		this.setState('connecting');
		let token = this.nextToken;
		this.nextToken = '';
		if (!token && this.getToken) {
			try {
				token = await this.getToken();
			} catch (e) {
				this.retry({ code: 0, reason: 'getToken failed: ' +
				    (e && e.message) });
				return;
			}
			if (this.closed || this.state !== 'connecting')
				return;
		}
		token = token || this.token;
		if (typeof token !== 'string' || token === '') {
			this.signOut(0, 'no token');
			return;
		}
		let ws;
		try {
			ws = new this.WebSocket(this.url, this.opts.protocols);
		} catch (e) {
			this.retry({ code: 0, reason: String(e && e.message) });
			return;
		}
		this.ws = ws;
		this.refused = null;
		this.shutdownIn = -1;
		ws.onopen = () => {
			this.lastRx = now();
			this.pinged = false;
			/* PROTOCOL.md 2: auth as the first message. */
			this.raw({ type: 'auth', token });
			this.signingIn = token;
			this.liveCheck();
		};
		ws.onmessage = (ev) => {
			if (this.ws !== ws)
				return;
			this.lastRx = now();
			this.pinged = false;
			let m;
			try {
				m = JSON.parse(typeof ev.data === 'string' ?
				    ev.data : String(ev.data));
			} catch (e) {
				this.emit('message', ev.data);
				return;
			}
			this.receive(m);
		};
		ws.onclose = (ev) => {
			if (this.ws !== ws)
				return;
			this.dropped(ev.code, ev.reason || '');
		};
		/* A close event normally follows an error and says what to
		 * do; some runtimes (Node 20's WebSocket on a refused
		 * connection) send none, and a socket may hang half-open:
		 * neither may stop the reconnecting. */
		ws.onerror = () => {
			if (this.ws !== ws)
				return;
			if (ws.readyState !== 1) {
				this.dropped(1006, 'connection failed');
				return;
			}
			setTimeout(() => {
				if (this.ws === ws)
					this.dropped(1006, 'error');
			}, 1000);
		};
		this.timers.live = setTimeout(() => {
			if (this.ws === ws && ws.readyState !== 1)
				this.dropped(1006, 'no connection within ' +
				    this.opts.connectTimeout + ' ms');
		}, this.opts.connectTimeout);
	}

	/* Forget the socket: none of its events reach us any more. */
	detach() {
		const ws = this.ws;
		this.ws = null;
		clearTimeout(this.timers.live);
		clearTimeout(this.timers.refresh);
		if (!ws)
			return;
		ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
		try {
			ws.close();
		} catch (e) {
			/* Already closed. */
		}
	}

	/* The socket is gone: requests in flight are rejected (the server
	 * may or may not have done them), except joins, which the rejoin
	 * repeats; queued ones wait for the next sign-in. */
	lost() {
		this.detach();
		for (const q of Array.from(this.pending.values())) {
			if (q.kind === 'join') {
				this.pending.delete(q.id);
				q.id = 0;
				this.queue.unshift(q);
			} else if (q.kind === 'rejoin') {
				this.pending.delete(q.id);
			} else {
				this.fail(q, new VkwsError('disconnected',
				    'the connection dropped before the answer'));
			}
		}
		for (const r of this.rooms.values()) {
			r.joined = false;
			/* A chat acked but whose copy never came: stored,
			 * seq unknown. */
			for (const q of r.own.splice(0))
				this.done(q, { seq: null, timestamp: null });
		}
	}

	dropped(code, reason) {
		this.lost();
		if (code === CLOSE_AUTH && this.refused) {
			this.signOut(code, reason, this.refused);
			return;
		}
		this.retry({ code, reason });
	}

	signOut(code, reason, reply) {
		clearTimeout(this.timers.retry);
		this.timers.retry = 0;
		const err = new VkwsError(reply ? reply.code : 'signed-out',
		    reply && reply.msg ? reply.msg : 'signed out: ' +
		    (reason || 'no valid token'));
		this.state = 'signed-out';
		for (const q of this.queue.splice(0))
			this.fail(q, err);
		this.authSettle(false, err);
		this.setState('signed-out', { code, reason,
		    msg: err.msg });
	}

	/* Wait, then connect again: server_shutdown's reconnectIn if the
	 * server gave one, else the backoff. */
	retry(why) {
		if (this.closed)
			return;
		let wait;
		if (this.shutdownIn >= 0) {
			wait = this.shutdownIn + this.random() * 250;
			this.shutdownIn = -1;
		} else {
			wait = this.backoff(this.attempt);
		}
		this.attempt++;
		clearTimeout(this.timers.retry);
		this.timers.retry = setTimeout(() => this.open(), wait);
		this.setState('offline', { retryIn: Math.round(wait),
		    retryAt: now() + Math.round(wait), code: why.code,
		    reason: why.reason });
	}

	backoff(n) {
		const b = Math.min(this.opts.backoffMax,
		    this.opts.backoffMin * Math.pow(2, Math.min(n, 30)));
		return b / 2 + this.random() * b / 2;
	}

	/* Connect now instead of waiting out the backoff (a "reconnect"
	 * button, the browser's online event). */
	reconnectNow() {
		if (this.state !== 'offline' || this.closed)
			return;
		this.attempt = 0;
		this.open();
	}

	/* Close for good: everything pending is rejected. */
	close() {
		this.closed = true;
		clearTimeout(this.timers.retry);
		this.lost();
		const err = new VkwsError('closed', 'the client was closed');
		for (const q of this.queue.splice(0))
			this.fail(q, err);
		this.authSettle(false, err);
		this.setState('closed');
	}

	/* Ping a quiet server; reconnect when it stays silent. */
	liveCheck() {
		clearTimeout(this.timers.live);
		const quiet = this.opts.quietMs;
		const idle = now() - this.lastRx;
		if (this.lastRx && idle >= 2 * quiet) {
			this.lost();
			this.retry({ code: 0, reason: 'no word from the ' +
			    'server' });
			return;
		}
		if (idle >= quiet && !this.pinged)
			this.pinged = this.raw({ type: 'ping' });
		this.timers.live = setTimeout(() => this.liveCheck(),
		    Math.max(1000, (idle >= quiet ? 2 * quiet : quiet) - idle));
		if (this.timers.live.unref)
			this.timers.live.unref();
	}

	/* With getToken: re-authenticate before the token expires. */
	scheduleRefresh(token) {
		clearTimeout(this.timers.refresh);
		const exp = tokenExp(token);
		if (!this.getToken || !exp)
			return;
		const left = exp - now();
		/* refreshBefore ahead, or at half its life for a token
		 * shorter than twice that. */
		const at = Math.max(0, left - this.opts.refreshBefore,
		    left / 2);
		this.timers.refresh = setTimeout(async () => {
			let t;
			try {
				t = await this.getToken();
			} catch (e) {
				return;	/* the server closes 4001 at exp:
					 * the reconnect asks again */
			}
			if (this.state === 'online' && typeof t === 'string' &&
			    t)
				this.request({ type: 'auth', token: t }, 'auth')
				    .catch(() => {});
		}, at);
		if (this.timers.refresh.unref)
			this.timers.refresh.unref();
	}

	/* ---- Incoming ------------------------------------------------ */

	receive(m) {
		this.emit('message', m);
		if (!isObj(m) || typeof m.type !== 'string')
			return;
		switch (m.type) {
		case 'ping':
			this.raw({ type: 'pong' });
			return;
		case 'pong':
			return;
		case 'auth':
			this.onAuth(m);
			return;
		case 'ack':
			this.onAck(m);
			return;
		case 'chat':
			this.onChat(m);
			return;
		case 'history':
			this.onHistory(m);
			return;
		case 'user_join':
		case 'user_leave':
			this.onMember(m);
			break;
		case 'room_deleted':
			if (typeof m.room === 'string')
				this.rooms.delete(m.room);
			break;
		case 'server_shutdown':
			this.shutdownIn = typeof m.reconnectIn === 'number' &&
			    m.reconnectIn >= 0 ? Math.min(m.reconnectIn,
			    this.opts.shutdownMax) : -1;
			break;
		case 'state':
		case 'message':
			return;	/* names of the library's own events */
		}
		this.emit(m.type, m);
	}

	onAuth(m) {
		const q = m.id !== undefined ? this.pending.get(m.id) : null;
		if (q) {
			/* A re-auth on the open connection. */
			if (m.code === 0) {
				this.scheduleRefresh(q.msg.token);
				this.done(q, m);
			} else {
				this.fail(q, new VkwsError(m.code, m.msg ||
				    'auth refused'));
			}
			this.emit('auth', m);
			return;
		}
		if (this.state === 'online') {
			this.emit('auth', m);
			return;
		}
		if (m.code !== 0) {
			/* PROTOCOL.md 2: the close 4001 follows; retrying
			 * with this token would only fail again. */
			this.refused = { code: m.code, msg: m.msg ||
			    'auth refused' };
			this.emit('auth', m);
			return;
		}
		const resumed = this.userId !== '' && this.userId === m.userId;
		if (this.userId && this.userId !== m.userId) {
			/* Another user: the rooms were the old one's. */
			this.rooms.clear();
		}
		this.clientId = String(m.clientId);
		this.userId = String(m.userId);
		this.attempt = 0;
		this.scheduleRefresh(this.signingIn);
		this.setState('online', { clientId: this.clientId,
		    userId: this.userId, resumed });
		this.emit('auth', m);
		this.authSettle(true, m);
		/* Rooms first, then what waited: a chat queued offline goes
		 * to a room joined again. Joins waiting in the queue are sent
		 * from there. */
		const queuedJoins = new Set(this.queue.filter((q) =>
		    q.kind === 'join').map((q) => q.room));
		for (const r of this.rooms.values()) {
			if (!r.wanted)
				continue;
			if (!queuedJoins.has(r.name))
				this.rejoin(r);
		}
		for (const q of this.queue.splice(0))
			this.transmit(q);
	}

	rejoin(r) {
		const id = 'rejoin-' + this.nextId++;
		const m = this.joinMsg(r, -1);
		m.id = id;
		this.pending.set(id, { id, kind: 'rejoin', room: r.name,
		    timer: 0, resolve: () => {}, reject: (e) => {
			r.wanted = false;
			this.emit('rejoin_failed', { room: r.name,
			    code: e.code, msg: e.msg });
		} });
		this.raw(m);
	}

	onAck(m) {
		const q = this.pending.get(m.id);
		if (!q)
			return;
		if (m.code !== 0) {
			const r = this.rooms.get(q.room);
			if (r && (q.kind === 'join' || q.kind === 'rejoin') &&
			    !r.joined)
				r.wanted = false;
			this.fail(q, new VkwsError(m.code, m.msg || 'refused'));
			return;
		}
		if (q.kind === 'chat') {
			/* Resolved by the sender's own copy, which follows. */
			this.pending.delete(q.id);
			q.id = 0;
			this.room(q.room).own.push(q);
			return;
		}
		this.done(q, { code: 0 });
	}

	leaving(room) {
		const all = Array.from(this.pending.values()).concat(this.queue);
		return all.some((q) => q.kind === 'leave' &&
		    q.msg.room === room);
	}

	onMember(m) {
		if (typeof m.room !== 'string' || !isObj(m.user) ||
		    m.user.clientId !== this.clientId)
			return;
		const r = this.room(m.room);
		if (m.type === 'user_join') {
			r.joined = true;
			/* Joined by the server (the default room, the API's
			 * joinRoom): kept on reconnect like any other. But
			 * the default room the user left is left again at
			 * each sign-in, unless a leave is on its way. */
			if (!r.left)
				r.wanted = true;
			else if (!this.leaving(r.name))
				this.request({ type: 'leave', room: r.name },
				    'leave').catch(() => {});
		} else {
			r.joined = false;
			r.wanted = false;
		}
	}

	/* What was delivered lately in r, seq -> timestamp, so that a
	 * message that comes twice (in a history reply and live) is shown
	 * once. */
	delivered(r, m) {
		r.recent.set(m.seq, m.timestamp);
		if (r.recent.size > RECENT_MAX)
			r.recent.delete(r.recent.keys().next().value);
	}

	/* Live chat: its seq is simply the newest (it may have gone back
	 * if the room started over), unless this very message (same seq,
	 * same timestamp) was delivered already: a server may send a
	 * message to a member that joined in the same instant both in the
	 * join's history and live. */
	onChat(m) {
		if (typeof m.room !== 'string') {
			this.emit('chat', m);
			return;
		}
		const r = this.room(m.room);
		if (typeof m.seq === 'number') {
			if (r.recent.has(m.seq) &&
			    r.recent.get(m.seq) === m.timestamp)
				return;
			this.delivered(r, m);
			r.lastSeq = m.seq;
		}
		if (typeof m.timestamp === 'number')
			r.lastTs = m.timestamp;
		const mine = isObj(m.from) && m.from.clientId === this.clientId;
		const q = mine ? r.own.shift() : undefined;
		this.emit('chat', m);
		if (q)
			this.done(q, { seq: m.seq, timestamp: m.timestamp });
	}

	/*
	 * A history reply, for a join or the default room at sign-in. The
	 * event carries only what this client has not seen, oldest first:
	 * the messages after the last seq seen. reset is true when the room
	 * started over (its messages were numbered again): then every
	 * message of the reply is new. complete is false when some messages
	 * sent meanwhile are no longer kept. raw holds the server's list.
	 */
	onHistory(m) {
		if (typeof m.room !== 'string') {
			this.emit('history', m);
			return;
		}
		const r = this.room(m.room);
		const all = (Array.isArray(m.messages) ? m.messages : [])
		    .filter((h) => isObj(h) && typeof h.seq === 'number');
		const seen = r.lastSeq;
		let reset = false;
		let out = all;
		if (seen > 0 && all.length) {
			const last = all[all.length - 1].seq;
			const anchor = all.find((h) => h.seq === seen);
			reset = last < seen || (anchor !== undefined &&
			    r.lastTs > 0 && anchor.timestamp !== r.lastTs);
			if (!reset)
				out = all.filter((h) => h.seq > seen);
		}
		/* complete: the server's word on what was asked, except when
		 * the gap after the last seq seen is known from the messages:
		 * a reply without since (the default room at sign-in) is
		 * "not complete" when the room holds more than it keeps, yet
		 * covers the gap when it reaches back to it. */
		let complete = m.complete !== false;
		if (seen > 0 && !reset && out.length)
			complete = out[0].seq === seen + 1;
		if (reset)
			r.recent.clear();
		for (const h of out)
			this.delivered(r, h);
		if (out.length) {
			const h = out[out.length - 1];
			r.lastSeq = h.seq;
			if (typeof h.timestamp === 'number')
				r.lastTs = h.timestamp;
		}
		this.emit('history', { type: 'history', room: m.room,
		    messages: out, complete, reset, resumed: seen > 0,
		    raw: m });
	}
}

/* connect(url, { token | getToken, WebSocket?, ...DEFAULTS }). */
export function connect(url, opts) {
	return new Client(url, opts);
}

export default { connect, Client, VkwsError, VERSION };
