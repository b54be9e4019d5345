/*
 * app.js: the chat client of the built-in page. It speaks the vkws wire
 * contract (PROTOCOL.md) over /ws: auth on open, pong to every ping,
 * reconnect with backoff and jitter (or after server_shutdown's
 * reconnectIn), and on reconnect it joins its rooms again with `since`,
 * the last seq it saw in each, so nothing sent meanwhile is missed.
 *
 * Everything that came over the network or from the user is put into the
 * page with textContent, never as HTML. No framework, no build step.
 */
(function () {
	'use strict';

	/* Reconnect backoff: the first retry after 0.5-1 s, doubling up to
	 * 15-30 s. Each wait is drawn from [base/2, base) so that clients
	 * dropped together do not return together. */
	var BACKOFF_MIN_MS = 1000;
	var BACKOFF_MAX_MS = 30000;
	/* After auth the server joins the default room on its own; wait this
	 * long for that room's history before joining the others anyway
	 * (a server run with --default-room '' sends none). */
	var DEFAULT_ROOM_WAIT_MS = 500;
	/* The server pings every 30 s by default. Silence this long: ask
	 * with a ping of our own; this long again: the link is dead. */
	var QUIET_MS = 45000;
	var DEAD_MS = 75000;
	/* Kept in the page per conversation and in the notification area. */
	var MAX_LINES = 500;
	var MAX_NOTES = 100;

	/* Tables keyed by names from the network: no prototype, so a user
	 * or room called "__proto__" is just a name. */
	function map() {
		return Object.create(null);
	}

	var $ = function (id) { return document.getElementById(id); };
	var ui = {
		status: $('status'), me: $('me'), reconnect: $('reconnect'),
		notesJump: $('notes-jump'), changeToken: $('change-token'),
		login: $('login'), token: $('token'), loginMsg: $('login-msg'),
		roomList: $('room-list'), joinForm: $('join-form'),
		joinRoom: $('join-room'), dmList: $('dm-list'),
		dmForm: $('dm-form'), dmUser: $('dm-user'),
		notesBox: $('notes-box'), notes: $('notes'),
		notesClear: $('notes-clear'), title: $('conv-title'),
		leave: $('leave'), logs: $('logs'), empty: $('empty'),
		sendForm: $('send-form'), sendText: $('send-text'),
		send: $('send'), memberCount: $('member-count'),
		memberList: $('member-list')
	};

	var st = {
		token: '',
		ws: null,
		online: false,		/* authenticated on the open socket */
		clientId: '',
		userId: '',
		attempt: 0,		/* reconnects since the last auth */
		retryAt: 0,		/* when the reconnect timer fires */
		retryTimer: 0,
		shutdownIn: -1,		/* server_shutdown.reconnectIn, ms */
		stopped: true,		/* no reconnect: no token, or refused */
		nextId: 1,
		pending: map(),		/* request id -> what it was */
		rejoinTimer: 0,
		rejoinDue: false,	/* rooms still to join after auth */
		restarted: false,	/* the server went away: see rejoin() */
		lastRx: 0,
		pinged: false,
		convs: map(),		/* key -> conversation, see conv() */
		current: '',		/* key of the shown conversation */
		unseenNotes: 0
	};

	/* ---- Small helpers ------------------------------------------- */

	function el(tag, cls, text) {
		var e = document.createElement(tag);
		if (cls)
			e.className = cls;
		if (text !== undefined && text !== null)
			e.textContent = String(text);
		return e;
	}

	function isObj(v) {
		return v !== null && typeof v === 'object' && !Array.isArray(v);
	}

	function str(v) {
		return typeof v === 'string' ? v : '';
	}

	function clock(ts) {
		var d = typeof ts === 'number' && isFinite(ts) ? new Date(ts) :
		    new Date();
		return d.toLocaleTimeString([], { hour: '2-digit',
		    minute: '2-digit' });
	}

	/* The name to show for a user object of the protocol: its
	 * userInfo.name when it has one, else its userId. */
	function who(u) {
		if (!isObj(u))
			return '?';
		var info = isObj(u.userInfo) ? u.userInfo : {};
		var name = str(info.name) || str(info.nickname);
		return name || str(u.userId) || '?';
	}

	function trim(list, max) {
		while (list.children.length > max)
			list.removeChild(list.firstElementChild);
	}

	/* ---- Conversations: rooms and private chats ------------------ */

	/*
	 * A conversation is a room ("#name") or a private chat with a user
	 * ("@uid"). Each keeps its own message list in the page, shown
	 * only while it is the current one.
	 */
	function conv(kind, name, create) {
		var key = (kind === 'room' ? '#' : '@') + name;
		var c = st.convs[key];
		if (c || !create)
			return c;
		c = {
			key: key, kind: kind, name: name,
			wanted: kind === 'room',	/* rejoin on reconnect */
			joined: false,
			lastSeq: 0,			/* of the newest message seen */
			lastTs: 0,			/* and its timestamp */
			members: map(),			/* clientId -> user */
			unread: 0,
			log: el('ol', 'log'),
			item: el('li'),
			button: el('button', 'conv'),
			badge: el('span', 'badge')
		};
		c.log.hidden = true;
		c.log.dataset.conv = key;
		c.log.setAttribute('aria-live', 'polite');
		c.button.type = 'button';
		c.button.dataset.conv = key;
		c.button.appendChild(el('span', 'conv-name',
		    (kind === 'room' ? '# ' : '@ ') + name));
		c.badge.hidden = true;
		c.button.appendChild(c.badge);
		c.button.addEventListener('click', function () {
			show(key);
		});
		c.item.appendChild(c.button);
		(kind === 'room' ? ui.roomList : ui.dmList).appendChild(c.item);
		ui.logs.appendChild(c.log);
		st.convs[key] = c;
		if (!st.current)
			show(key);
		refreshConv(c);
		return c;
	}

	/* Another user signed in on this page: their rooms are not ours. */
	function forget() {
		Object.keys(st.convs).forEach(function (k) {
			dropConv(st.convs[k]);
		});
	}

	function dropConv(c) {
		c.item.remove();
		c.log.remove();
		delete st.convs[c.key];
		if (st.current === c.key) {
			var keys = Object.keys(st.convs);
			st.current = '';
			show(keys.length ? keys[0] : '');
		}
	}

	function refreshConv(c) {
		c.button.classList.toggle('current', st.current === c.key);
		c.button.classList.toggle('away', c.kind === 'room' &&
		    !c.joined);
		c.badge.hidden = c.unread === 0;
		c.badge.textContent = c.unread > 99 ? '99+' : String(c.unread);
		if (st.current === c.key) {
			ui.leave.hidden = c.kind !== 'room';
			ui.title.textContent = (c.kind === 'room' ? '# ' :
			    'Private with ') + c.name +
			    (c.kind === 'room' && !c.joined ? ' (not joined)' : '');
		}
	}

	function show(key) {
		var c = st.convs[key];
		var prev = st.convs[st.current];
		if (prev) {
			prev.log.hidden = true;
			st.current = '';
			refreshConv(prev);
		}
		st.current = c ? key : '';
		ui.empty.hidden = !!c;
		if (!c) {
			ui.title.textContent = 'No room';
			ui.leave.hidden = true;
			showMembers();
			updateControls();
			return;
		}
		c.log.hidden = false;
		c.unread = 0;
		refreshConv(c);
		showMembers();
		updateControls();
		ui.logs.scrollTop = ui.logs.scrollHeight;
	}

	/* Append a line to a conversation, keep the view at the bottom if
	 * it was there, and count it unread if the conversation is not
	 * shown. */
	function addLine(c, li, unread) {
		var atEnd = ui.logs.scrollHeight - ui.logs.scrollTop -
		    ui.logs.clientHeight < 40;
		c.log.appendChild(li);
		trim(c.log, MAX_LINES);
		if (st.current === c.key) {
			if (atEnd)
				ui.logs.scrollTop = ui.logs.scrollHeight;
		} else if (unread) {
			c.unread++;
			refreshConv(c);
		}
	}

	function sysLine(c, text) {
		addLine(c, el('li', 'sys', text), false);
	}

	/* One chat or private message as a list item. */
	function msgLine(from, text, ts, seq, how) {
		var li = el('li', 'msg');
		var meta = el('div', 'meta');
		var name = el('span', 'who', who(from));
		var mine = isObj(from) && from.userId === st.userId;
		if (isObj(from) && typeof from.userId === 'string')
			name.title = from.userId;
		meta.appendChild(name);
		meta.appendChild(el('time', '', clock(ts)));
		li.appendChild(meta);
		li.appendChild(el('div', 'text', text));
		if (mine)
			li.classList.add('own');
		if (how)
			li.classList.add(how);
		if (typeof seq === 'number')
			li.dataset.seq = String(seq);
		return li;
	}

	/* ---- Members ------------------------------------------------- */

	function showMembers() {
		var c = st.convs[st.current];
		var byUser = map(), order = [];
		ui.memberList.textContent = '';
		if (!c || c.kind !== 'room') {
			ui.memberCount.textContent = '';
			return;
		}
		/* A user with several connections is listed once. */
		Object.keys(c.members).forEach(function (id) {
			var u = c.members[id];
			var uid = str(u.userId);
			if (!byUser[uid]) {
				byUser[uid] = { user: u, n: 0 };
				order.push(uid);
			}
			byUser[uid].n++;
		});
		order.sort();
		order.forEach(function (uid) {
			var m = byUser[uid];
			var li = el('li');
			var b = el('button', 'member', who(m.user));
			b.type = 'button';
			b.title = uid === st.userId ? 'you' :
			    'Private message to ' + uid;
			b.dataset.user = uid;
			if (uid === st.userId) {
				b.disabled = true;
				b.appendChild(el('span', 'tag', 'you'));
			} else {
				b.addEventListener('click', function () {
					show(conv('dm', uid, true).key);
					ui.sendText.focus();
				});
			}
			if (who(m.user) !== uid)
				b.appendChild(el('span', 'uid', uid));
			if (m.n > 1)
				b.appendChild(el('span', 'tag', '\u00d7' + m.n));
			li.appendChild(b);
			ui.memberList.appendChild(li);
		});
		ui.memberCount.textContent = String(order.length);
	}

	/* ---- The notification area ----------------------------------- */

	/* kind: notification, system, alert, error, private, info, or the
	 * type of whatever else the server pushed. */
	function note(kind, text, title) {
		var li = el('li', 'note');
		var known = ['notification', 'system', 'alert', 'error',
		    'private', 'info', 'shutdown'];
		li.classList.add('note-' + (known.indexOf(kind) >= 0 ? kind :
		    'other'));
		li.dataset.kind = kind;
		var meta = el('div', 'meta');
		meta.appendChild(el('span', 'kind', kind));
		meta.appendChild(el('time', '', clock()));
		li.appendChild(meta);
		if (title)
			li.appendChild(el('div', 'title', title));
		li.appendChild(el('div', 'text', text));
		ui.notes.insertBefore(li, ui.notes.firstChild);
		while (ui.notes.children.length > MAX_NOTES)
			ui.notes.removeChild(ui.notes.lastElementChild);
		ui.notesBox.classList.remove('empty');
		st.unseenNotes++;
		ui.notesJump.hidden = false;
		ui.notesJump.textContent = 'Notifications (' + st.unseenNotes +
		    ')';
	}

	/* A server-pushed message of any other type (a broadcast from the
	 * server API carries whatever JSON its caller gave). */
	function pushed(m) {
		if (!isObj(m)) {
			note('message', typeof m === 'string' ? m :
			    JSON.stringify(m));
			return;
		}
		var kind = str(m.type) || 'message';
		var title = str(m.title);
		var body = str(m.content) || str(m.message) || str(m.text) ||
		    str(m.msg) || str(m.body);
		if (!body) {
			var rest = map();
			Object.keys(m).forEach(function (k) {
				if (k !== 'type' && k !== 'title')
					rest[k] = m[k];
			});
			body = Object.keys(rest).length ?
			    JSON.stringify(rest) : '';
		}
		if (body.length > 2000)
			body = body.slice(0, 2000) + '\u2026';
		note(kind, body, title);
	}

	/* ---- Connection ---------------------------------------------- */

	function setStatus(state, text) {
		ui.status.dataset.state = state;
		ui.status.textContent = text;
		ui.reconnect.hidden = state !== 'waiting';
	}

	function updateControls() {
		var c = st.convs[st.current];
		var can = st.online && !!c && (c.kind === 'dm' || c.joined);
		ui.send.disabled = !can;
		ui.sendText.disabled = !can;
		ui.joinForm.querySelector('button').disabled = !st.online;
		ui.leave.disabled = !st.online;
	}

	function wsUrl() {
		var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
		return scheme + '//' + location.host + '/ws';
	}

	/* Send a request; with what, it carries an id and its ack is
	 * matched to what (a description and callbacks). */
	function request(m, what) {
		if (!st.ws || st.ws.readyState !== WebSocket.OPEN)
			return false;
		if (what) {
			m.id = st.nextId++;
			st.pending[m.id] = what;
		}
		st.ws.send(JSON.stringify(m));
		return true;
	}

	function connect() {
		clearTimeout(st.retryTimer);
		st.retryTimer = 0;
		if (!st.token || st.stopped)
			return;
		if (st.ws)
			detach(st.ws);
		setStatus('connecting', 'connecting\u2026');
		var ws;
		try {
			ws = new WebSocket(wsUrl());
		} catch (e) {
			note('error', 'Cannot open a WebSocket: ' + e.message);
			retry();
			return;
		}
		st.ws = ws;
		ws.onopen = function () {
			st.lastRx = Date.now();
			st.pinged = false;
			/* PROTOCOL.md 2: auth as the first message, rather
			 * than ?token=, keeps the token out of access logs. */
			ws.send(JSON.stringify({ type: 'auth',
			    token: st.token }));
			setStatus('connecting', 'signing in\u2026');
		};
		ws.onmessage = function (ev) {
			st.lastRx = Date.now();
			st.pinged = false;
			var m;
			try {
				m = JSON.parse(ev.data);
			} catch (e) {
				note('error', 'The server sent something that ' +
				    'is not JSON: ' + String(ev.data).slice(0,
				    200));
				return;
			}
			receive(m);
		};
		ws.onclose = function (ev) {
			if (st.ws !== ws)
				return;
			closed(ev.code, ev.reason);
		};
		ws.onerror = function () {
			/* A close event follows; it says what to do. */
		};
	}

	/* Forget a socket: no events from it reach the page any more. */
	function detach(ws) {
		ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
		try {
			ws.close();
		} catch (e) {
			/* Already closed. */
		}
	}

	function offline() {
		st.ws = null;
		st.online = false;
		st.pending = map();
		clearTimeout(st.rejoinTimer);
		st.rejoinDue = false;
		Object.keys(st.convs).forEach(function (k) {
			var c = st.convs[k];
			if (c.kind === 'room') {
				c.joined = false;
				c.members = map();
				refreshConv(c);
			}
		});
		showMembers();
		updateControls();
	}

	function closed(code, reason) {
		var wasOnline = st.online;
		offline();
		if (code === 4001 && reason !== 'auth timeout') {
			/* PROTOCOL.md 2: the token was refused or expired;
			 * trying again with it would only fail again. */
			stop('The server closed the connection (' +
			    (reason || 'authentication') + '). Enter a new ' +
			    'token.');
			return;
		}
		if (wasOnline || code !== 1006)
			note('system', 'Disconnected (' + code +
			    (reason ? ': ' + reason : '') + ').');
		retry();
	}

	function stop(msg) {
		st.stopped = true;
		clearTimeout(st.retryTimer);
		if (st.ws) {
			detach(st.ws);
			offline();
		}
		setStatus('offline', 'offline');
		note('error', msg);
		ui.loginMsg.textContent = msg;
		ui.login.hidden = false;
	}

	/* Schedule the next attempt: server_shutdown's reconnectIn if the
	 * server gave one, else exponential backoff with jitter. */
	function retry() {
		var wait;
		if (st.stopped)
			return;
		if (st.shutdownIn >= 0) {
			wait = st.shutdownIn + Math.random() * 250;
			st.shutdownIn = -1;
		} else {
			var base = Math.min(BACKOFF_MAX_MS,
			    BACKOFF_MIN_MS * Math.pow(2, st.attempt));
			wait = base / 2 + Math.random() * base / 2;
			st.attempt++;
		}
		st.retryAt = Date.now() + wait;
		clearTimeout(st.retryTimer);
		st.retryTimer = setTimeout(connect, wait);
		tick();
	}

	/* Once a second: the countdown to the next attempt, and the check
	 * that a quiet link is still alive. */
	function tick() {
		var now = Date.now();
		if (st.retryTimer) {
			var s = Math.max(0, Math.ceil((st.retryAt - now) / 1000));
			setStatus('waiting', 'offline \u2013 reconnecting in ' +
			    s + ' s');
		}
		if (st.online && now - st.lastRx > DEAD_MS) {
			note('system', 'No word from the server for ' +
			    Math.round(DEAD_MS / 1000) + ' s; reconnecting.');
			detach(st.ws);
			offline();
			retry();
		} else if (st.online && now - st.lastRx > QUIET_MS &&
		    !st.pinged) {
			st.pinged = request({ type: 'ping' });
		}
	}

	/* ---- Incoming messages --------------------------------------- */

	function receive(m) {
		var t = isObj(m) ? m.type : undefined;
		switch (t) {
		case 'ping':
			request({ type: 'pong' });
			return;
		case 'pong':
			return;
		case 'auth':
			onAuth(m);
			return;
		case 'ack':
			onAck(m);
			return;
		case 'error':
			note('error', 'Error ' + m.code + ': ' +
			    (str(m.msg) || 'request refused'));
			return;
		case 'chat':
			if (typeof m.room === 'string' && isObj(m.from)) {
				onChat(m);
				return;
			}
			break;
		case 'private':
			if (isObj(m.from)) {
				onPrivate(m);
				return;
			}
			break;
		case 'user_join':
		case 'user_leave':
		case 'user_list':
		case 'history':
		case 'room_deleted':
			if (typeof m.room === 'string') {
				onRoomEvent(t, m);
				return;
			}
			break;
		case 'server_shutdown':
			st.restarted = true;
			st.shutdownIn = typeof m.reconnectIn === 'number' &&
			    m.reconnectIn >= 0 ? Math.min(m.reconnectIn,
			    60000) : -1;
			note('system', 'The server is restarting; back in ' +
			    'about ' + Math.ceil(Math.max(0, st.shutdownIn) /
			    1000) + ' s.');
			return;
		}
		pushed(m);
	}

	function onAuth(m) {
		if (m.code !== 0) {
			/* PROTOCOL.md 2: the close 4001 follows; do not
			 * reconnect with a token the server refused. */
			stop('Authentication failed: the server refused ' +
			    'the token (' + m.code + (str(m.msg) ? ' ' +
			    str(m.msg) : '') + ').');
			return;
		}
		if (st.userId && st.userId !== str(m.userId))
			forget();
		st.online = true;
		st.attempt = 0;
		st.clientId = str(m.clientId);
		st.userId = str(m.userId);
		ui.me.textContent = 'signed in as ' + st.userId;
		ui.login.hidden = true;
		setStatus('online', 'online');
		updateControls();
		/* The server now joins the default room and sends its
		 * history; the other rooms are joined once that is in. */
		st.rejoinDue = true;
		clearTimeout(st.rejoinTimer);
		st.rejoinTimer = setTimeout(rejoin, DEFAULT_ROOM_WAIT_MS);
	}

	/*
	 * Join again every room the user was in, each with since = the last
	 * seq seen there (PROTOCOL.md 3), so the history reply holds just
	 * what was missed. A room that was removed and made again (as every
	 * room but the kept ones is by a restart) counts seq from 1 again,
	 * and since would hide its new messages; so after a server_shutdown,
	 * or when the default room's seq went back, join without since and
	 * let onHistory() pick the new messages by seq and timestamp.
	 */
	function rejoin() {
		if (!st.rejoinDue)
			return;
		var restarted = st.restarted;
		st.rejoinDue = false;
		st.restarted = false;
		clearTimeout(st.rejoinTimer);
		Object.keys(st.convs).forEach(function (k) {
			var c = st.convs[k];
			if (c.kind !== 'room' || !c.wanted || c.joined)
				return;
			c.asked = true;
			join(c.name, restarted ? 0 : c.lastSeq);
		});
	}

	function join(name, since) {
		var m = { type: 'join', room: name };
		if (since > 0)
			m.since = since;
		return request(m, { what: 'join ' + name, room: name,
		    fail: function () {
			/* A room that never opened goes away; one with
			 * messages stays, marked as not joined. */
			var c = conv('room', name, false);
			if (!c || c.joined)
				return;
			c.wanted = false;
			if (!c.log.children.length)
				dropConv(c);
			else
				refreshConv(c);
		} });
	}

	function onAck(m) {
		var p = st.pending[m.id];
		delete st.pending[m.id];
		if (!p)
			return;
		if (m.code === 0) {
			if (p.ok)
				p.ok();
			return;
		}
		note('error', 'Could not ' + p.what + ': ' +
		    (str(m.msg) || 'error') + ' (' + m.code + ')');
		if (p.fail)
			p.fail(m.code);
		var c = p.room !== undefined ? conv('room', p.room, false) :
		    undefined;
		/* -3 or -4 on a room: we are not in it (deleted, or left by
		 * the server API); stop showing it as joined. */
		if (c && (m.code === -3 || m.code === -4)) {
			c.wanted = false;
			c.joined = false;
			refreshConv(c);
			updateControls();
		}
	}

	function onChat(m) {
		var c = conv('room', m.room, true);
		var seq = typeof m.seq === 'number' ? m.seq : undefined;
		addLine(c, msgLine(m.from, str(m.message), m.timestamp, seq),
		    true);
		/* Live messages come once each; their seq is simply the
		 * newest, even if it went back after a restart. */
		if (seq !== undefined)
			c.lastSeq = seq;
		if (typeof m.timestamp === 'number')
			c.lastTs = m.timestamp;
	}

	function onPrivate(m) {
		var uid = str(m.from.userId);
		var c = conv('dm', uid, true);
		addLine(c, msgLine(m.from, str(m.message), m.timestamp,
		    undefined, 'in'), true);
		if (st.current !== c.key)
			note('private', str(m.message), 'Private message from ' +
			    who(m.from));
	}

	function self(u) {
		return isObj(u) && u.clientId === st.clientId;
	}

	function onRoomEvent(t, m) {
		var c = conv('room', m.room, t === 'user_join' && self(m.user));
		if (!c)
			return;
		if (t === 'user_join') {
			if (!isObj(m.user))
				return;
			c.members[str(m.user.clientId)] = m.user;
			if (self(m.user)) {
				c.joined = true;
				c.wanted = true;
				refreshConv(c);
				updateControls();
			} else
				sysLine(c, who(m.user) + ' joined');
		} else if (t === 'user_leave') {
			if (!isObj(m.user))
				return;
			delete c.members[str(m.user.clientId)];
			sysLine(c, who(m.user) + ' left');
		} else if (t === 'user_list') {
			c.members = map();
			(Array.isArray(m.users) ? m.users : []).forEach(
			    function (u) {
				if (isObj(u))
					c.members[str(u.clientId)] = u;
			});
		} else if (t === 'history') {
			onHistory(c, m);
		} else if (t === 'room_deleted') {
			note('system', 'Room ' + c.name + ' was deleted.');
			dropConv(c);
			return;
		}
		if (st.current === c.key)
			showMembers();
	}

	/*
	 * A history reply. New to the page is what has a seq above the last
	 * one seen, or, in a room whose seq started over, a timestamp after
	 * the last message seen; the rest is already shown.
	 */
	function onHistory(c, m) {
		var msgs = (Array.isArray(m.messages) ? m.messages : [])
		    .filter(function (h) {
			return isObj(h) && typeof h.seq === 'number';
		});
		var last = msgs.length ? msgs[msgs.length - 1].seq : 0;
		var seen = c.lastSeq > 0;
		/* The first history after auth that we did not ask for is
		 * the default room's: if its seq went back, the server
		 * started over. */
		if (st.rejoinDue && !c.asked) {
			if (seen && last < c.lastSeq)
				st.restarted = true;
			rejoin();
		}
		c.asked = false;
		if (m.complete === false && seen)
			sysLine(c, 'Some messages sent while away are no ' +
			    'longer kept.');
		var seq0 = c.lastSeq, ts0 = c.lastTs;
		msgs.forEach(function (h) {
			var ts = typeof h.timestamp === 'number' ? h.timestamp : 0;
			if (h.seq <= seq0 && ts <= ts0)
				return;
			addLine(c, msgLine(h.from, str(h.message), h.timestamp,
			    h.seq, 'hist'), false);
			c.lastSeq = h.seq;
			if (ts)
				c.lastTs = ts;
		});
	}

	/* ---- User actions -------------------------------------------- */

	ui.sendForm.addEventListener('submit', function (ev) {
		ev.preventDefault();
		var c = st.convs[st.current];
		var text = ui.sendText.value;
		if (!c || !text.trim())
			return;
		var ok;
		if (c.kind === 'room') {
			ok = request({ type: 'chat', room: c.name,
			    content: text }, { what: 'send to ' + c.name,
			    room: c.name, fail: function () {
				if (!ui.sendText.value)
					ui.sendText.value = text;
			} });
		} else {
			/* The server sends a private message to the target
			 * only, so the sender's copy is added on its ack. */
			ok = request({ type: 'private', targetUserId: c.name,
			    content: text }, { what: 'message ' + c.name,
			    ok: function () {
				addLine(c, msgLine({ userId: st.userId,
				    clientId: st.clientId }, text, Date.now(),
				    undefined, 'out'), false);
			}, fail: function () {
				if (!ui.sendText.value)
					ui.sendText.value = text;
			} });
		}
		if (ok)
			ui.sendText.value = '';
	});

	ui.joinForm.addEventListener('submit', function (ev) {
		ev.preventDefault();
		var name = ui.joinRoom.value.trim();
		if (!name)
			return;
		var c = conv('room', name, false);
		if (c && c.joined) {
			show(c.key);
		} else if (join(name, 0)) {
			c = conv('room', name, true);
			c.asked = true;
			show(c.key);
		}
		ui.joinRoom.value = '';
	});

	ui.dmForm.addEventListener('submit', function (ev) {
		ev.preventDefault();
		var uid = ui.dmUser.value.trim();
		if (!uid)
			return;
		show(conv('dm', uid, true).key);
		ui.dmUser.value = '';
		ui.sendText.focus();
	});

	ui.leave.addEventListener('click', function () {
		var c = st.convs[st.current];
		if (!c || c.kind !== 'room')
			return;
		c.wanted = false;
		if (!c.joined || !request({ type: 'leave', room: c.name },
		    { what: 'leave ' + c.name, ok: function () {
			dropConv(c);
		}, fail: function () {
			dropConv(c);
		} }))
			dropConv(c);
	});

	ui.notesClear.addEventListener('click', function () {
		ui.notes.textContent = '';
		ui.notesBox.classList.add('empty');
		st.unseenNotes = 0;
		ui.notesJump.hidden = true;
	});

	ui.notesJump.addEventListener('click', function () {
		st.unseenNotes = 0;
		ui.notesJump.hidden = true;
		ui.notesBox.scrollIntoView({ block: 'nearest' });
	});

	ui.reconnect.addEventListener('click', function () {
		st.attempt = 0;
		connect();
	});

	ui.changeToken.addEventListener('click', function () {
		ui.login.hidden = !ui.login.hidden;
		if (!ui.login.hidden)
			ui.token.focus();
	});

	ui.login.addEventListener('submit', function (ev) {
		ev.preventDefault();
		start(ui.token.value.trim());
		ui.token.value = '';
	});

	/* Start over with a token: from the field, or from the address. */
	function start(token) {
		if (!token)
			return;
		if (st.ws) {
			detach(st.ws);
			offline();
		}
		st.token = token;
		st.stopped = false;
		st.attempt = 0;
		st.shutdownIn = -1;
		st.restarted = false;
		ui.login.hidden = true;
		connect();
	}

	/* The token in the fragment (#token=...) never reaches the server
	 * in the request line or a Referer. */
	function fragmentToken() {
		var h = location.hash.replace(/^#/, '');
		var v = new URLSearchParams(h).get('token');
		return v ? v.trim() : '';
	}

	window.addEventListener('hashchange', function () {
		var t = fragmentToken();
		if (t && t !== st.token)
			start(t);
	});

	/* Back on the network: try at once rather than wait the backoff. */
	window.addEventListener('online', function () {
		if (st.retryTimer)
			connect();
	});

	setInterval(tick, 1000);
	updateControls();
	var t0 = fragmentToken();
	if (t0) {
		start(t0);
	} else {
		ui.login.hidden = false;
		ui.token.focus();
	}
}());
