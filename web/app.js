/*
 * app.js: the user interface of the built-in chat page. Everything that
 * speaks the wire contract (sign-in, ping, acks, reconnect and backoff,
 * rejoin with since, the gap delivered once) is the client library
 * /vkws.js; this file only turns its events into the page and the
 * user's actions into its calls.
 *
 * Everything that came over the network or from the user is put into the
 * page with textContent, never as HTML. No framework, no build step.
 */
import { connect } from '/vkws.js';

/* Kept in the page per conversation and in the notification area. */
const MAX_LINES = 500;
const MAX_NOTES = 100;
/* Message types the page shows in conversations; any other type the
 * server sends (server API broadcasts) goes to the notification area. */
const KNOWN = new Set(['chat', 'private', 'user_join', 'user_leave',
    'user_list', 'history', 'room_deleted', 'auth', 'ack', 'ping', 'pong',
    'error', 'server_shutdown']);

/* Tables keyed by names from the network: no prototype, so a user or
 * room called "__proto__" is just a name. */
function map() {
	return Object.create(null);
}

const $ = (id) => document.getElementById(id);
const ui = {
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
	memberList: $('member-list'), members: $('members'),
	membersToggle: $('members-toggle'), membersClose: $('members-close')
};

const st = {
	client: null,		/* the vkws.js client */
	token: '',
	online: false,
	wasOnline: false,	/* signed in at least once with this token */
	userId: '',
	clientId: '',
	me: null,		/* own user object, for the name */
	connNote: null,		/* the "disconnected" / "restarting" note */
	convs: map(),		/* key -> conversation, see conv() */
	current: '',		/* key of the shown conversation */
	unseenNotes: 0,
	retryAt: 0,
	users: map()		/* userId -> latest user object seen */
};

/* ---- Small helpers ------------------------------------------------- */

function el(tag, cls, text) {
	const e = document.createElement(tag);
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
	const d = typeof ts === 'number' && isFinite(ts) ? new Date(ts) :
	    new Date();
	return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/* The name to show for a user object of the protocol: its userInfo.name
 * when it has one, else its userId. */
function who(u) {
	if (!isObj(u))
		return '?';
	const info = isObj(u.userInfo) ? u.userInfo : {};
	return str(info.name) || str(info.nickname) || str(u.userId) || '?';
}

/* Remember the newest user object of each user, for names. */
function seen(u) {
	if (!isObj(u) || typeof u.userId !== 'string')
		return;
	st.users[u.userId] = u;
	if (u.userId === st.userId)
		st.me = u;
}

/* The userInfo of a JWT, read without checking it (the server does):
 * the page's own name before any message shows it. */
function tokenUser(token) {
	try {
		let b = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
		while (b.length % 4)
			b += '=';
		const c = JSON.parse(new TextDecoder().decode(Uint8Array.from(
		    atob(b), (ch) => ch.charCodeAt(0))));
		return { userId: str(c.uid), clientId: '',
		    userInfo: isObj(c.userInfo) ? c.userInfo : {} };
	} catch (e) {
		return null;
	}
}

function myself() {
	return st.me || { userId: st.userId, clientId: st.clientId,
	    userInfo: {} };
}

function trim(list, max) {
	while (list.children.length > max)
		list.removeChild(list.firstElementChild);
}

/* ---- Conversations: rooms and private chats ------------------------ */

/*
 * A conversation is a room ("#name") or a private chat with a user
 * ("@uid"). Each keeps its own message list in the page, shown only while
 * it is the current one.
 */
function conv(kind, name, create) {
	const key = (kind === 'room' ? '#' : '@') + name;
	let c = st.convs[key];
	if (c || !create)
		return c;
	c = {
		key, kind, name,
		joined: false,
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
	c.button.addEventListener('click', () => show(key));
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
	Object.keys(st.convs).forEach((k) => dropConv(st.convs[k]));
	st.users = map();
}

function dropConv(c) {
	c.item.remove();
	c.log.remove();
	delete st.convs[c.key];
	if (st.current === c.key) {
		const keys = Object.keys(st.convs);
		st.current = '';
		show(keys.length ? keys[0] : '');
	}
}

function refreshConv(c) {
	c.button.classList.toggle('current', st.current === c.key);
	c.button.classList.toggle('away', c.kind === 'room' && !c.joined);
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
	const c = st.convs[key];
	const prev = st.convs[st.current];
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

/* Append a line to a conversation, keep the view at the bottom if it was
 * there, and count it unread if the conversation is not shown. */
function addLine(c, li, unread) {
	const atEnd = ui.logs.scrollHeight - ui.logs.scrollTop -
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

/* One chat or private message as a list item. Own messages carry the
 * own display name, as everyone else's do. */
function msgLine(from, text, ts, seq, how) {
	const li = el('li', 'msg');
	const meta = el('div', 'meta');
	const mine = isObj(from) && from.userId === st.userId;
	const name = el('span', 'who', who(mine ? myself() : from));
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

/* ---- Members ------------------------------------------------------- */

function memberButton(uid, u, n) {
	const li = el('li');
	const b = el('button', 'member', who(u));
	b.type = 'button';
	b.dataset.user = uid;
	if (uid === st.userId) {
		b.title = 'you';
		b.disabled = true;
		b.appendChild(el('span', 'tag', 'you'));
	} else {
		b.title = 'Private message to ' + uid;
		b.addEventListener('click', () => {
			setMembersOpen(false);
			show(conv('dm', uid, true).key);
			ui.sendText.focus();
		});
	}
	if (who(u) !== uid)
		b.appendChild(el('span', 'uid', uid));
	if (n > 1)
		b.appendChild(el('span', 'tag', '\u00d7' + n));
	li.appendChild(b);
	return li;
}

function showMembers() {
	const c = st.convs[st.current];
	ui.memberList.textContent = '';
	let count = 0;
	if (c && c.kind === 'dm') {
		/* A private chat has two members: the user and the peer. */
		const peer = st.users[c.name] || { userId: c.name, userInfo: {} };
		ui.memberList.appendChild(memberButton(st.userId, myself(), 1));
		ui.memberList.appendChild(memberButton(c.name, peer, 1));
		count = 2;
	} else if (c) {
		/* A user with several connections is listed once. */
		const byUser = map(), order = [];
		Object.keys(c.members).forEach((id) => {
			const u = c.members[id];
			const uid = str(u.userId);
			if (!byUser[uid]) {
				byUser[uid] = { user: u, n: 0 };
				order.push(uid);
			}
			byUser[uid].n++;
		});
		order.sort();
		order.forEach((uid) => ui.memberList.appendChild(
		    memberButton(uid, byUser[uid].user, byUser[uid].n)));
		count = order.length;
	}
	ui.memberCount.textContent = c ? String(count) : '';
	ui.membersToggle.textContent = 'Members' + (c ? ' (' + count + ')' :
	    '');
}

/* On a narrow screen the member list is a panel over the messages. */
function setMembersOpen(open) {
	document.body.classList.toggle('members-open', open);
	ui.membersToggle.setAttribute('aria-expanded', String(open));
}

/* ---- The notification area ----------------------------------------- */

/* kind: notification, system, alert, error, private, info, or the type
 * of whatever else the server pushed. Returns the note. */
function note(kind, text, title) {
	const li = el('li', 'note');
	const known = ['notification', 'system', 'alert', 'error', 'private',
	    'info', 'shutdown'];
	li.classList.add('note-' + (known.indexOf(kind) >= 0 ? kind :
	    'other'));
	li.dataset.kind = kind;
	const meta = el('div', 'meta');
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
	ui.notesJump.textContent = 'Notifications (' + st.unseenNotes + ')';
	return li;
}

/* The connection has one note at a time: "disconnected", "the server is
 * restarting", then, once back, "reconnected" in its place. */
function connNote(text) {
	if (st.connNote && st.connNote.isConnected) {
		st.connNote.querySelector('.text').textContent = text;
		st.connNote.querySelector('time').textContent = clock();
		return;
	}
	st.connNote = note('system', text);
}

/* A server-pushed message of any other type (a broadcast from the
 * server API carries whatever JSON its caller gave). */
function pushed(m) {
	if (!isObj(m)) {
		note('message', typeof m === 'string' ? m : JSON.stringify(m));
		return;
	}
	const kind = str(m.type) || 'message';
	const title = str(m.title);
	let body = str(m.content) || str(m.message) || str(m.text) ||
	    str(m.msg) || str(m.body);
	if (!body) {
		const rest = map();
		Object.keys(m).forEach((k) => {
			if (k !== 'type' && k !== 'title')
				rest[k] = m[k];
		});
		body = Object.keys(rest).length ? JSON.stringify(rest) : '';
	}
	if (body.length > 2000)
		body = body.slice(0, 2000) + '\u2026';
	note(kind, body, title);
}

/* ---- Connection state ------------------------------------------------ */

function setStatus(state, text) {
	ui.status.dataset.state = state;
	ui.status.textContent = text;
	ui.reconnect.hidden = state !== 'waiting';
}

/* Every control that sends something needs a signed-in connection:
 * Join, Open (a private chat), Send and Leave alike. */
function updateControls() {
	const c = st.convs[st.current];
	const can = st.online && !!c && (c.kind === 'dm' || c.joined);
	ui.send.disabled = !can;
	ui.sendText.disabled = !can;
	ui.joinForm.querySelector('button').disabled = !st.online;
	ui.dmForm.querySelector('button').disabled = !st.online;
	ui.leave.disabled = !st.online;
}

function onState(s) {
	const was = st.online;
	st.online = s.state === 'online';
	if (!st.online && was) {
		Object.keys(st.convs).forEach((k) => {
			const c = st.convs[k];
			if (c.kind === 'room') {
				c.joined = false;
				c.members = map();
				refreshConv(c);
			}
		});
		showMembers();
	}
	switch (s.state) {
	case 'connecting':
		setStatus('connecting', 'connecting\u2026');
		break;
	case 'online':
		if (st.userId && st.userId !== s.userId)
			forget();
		st.userId = s.userId;
		st.clientId = s.clientId;
		if (!st.me || st.me.userId !== s.userId)
			st.me = tokenUser(st.token);
		ui.me.textContent = 'signed in as ' + who(myself()) +
		    (who(myself()) !== st.userId ? ' (' + st.userId + ')' : '');
		ui.login.hidden = true;
		setStatus('online', 'online');
		if (st.wasOnline && st.connNote)
			connNote('Reconnected.');
		st.connNote = null;
		st.wasOnline = true;
		break;
	case 'offline':
		st.retryAt = s.retryAt || 0;
		if (st.wasOnline && !(st.connNote && st.connNote.isConnected) &&
		    s.code !== 1006)
			connNote('Disconnected (' + s.code + (s.reason ? ': ' +
			    s.reason : '') + '); reconnecting.');
		tick();
		break;
	case 'signed-out':
		setStatus('offline', 'offline');
		signedOut('Authentication failed: the server refused the ' +
		    'token (' + (s.code === 4001 && s.msg ? s.msg : s.reason ||
		    s.msg || 'no token') + '). Enter a new token.');
		break;
	}
	updateControls();
}

function signedOut(msg) {
	note('error', msg);
	ui.loginMsg.textContent = msg;
	ui.login.hidden = false;
}

/* Once a second: the countdown to the next attempt. */
function tick() {
	if (!st.client || st.client.state !== 'offline')
		return;
	const s = Math.max(0, Math.ceil((st.retryAt - Date.now()) / 1000));
	setStatus('waiting', 'offline \u2013 reconnecting in ' + s + ' s');
}

/* ---- Incoming messages ------------------------------------------------ */

function onChat(m) {
	if (typeof m.room !== 'string' || !isObj(m.from))
		return;
	seen(m.from);
	const c = conv('room', m.room, true);
	addLine(c, msgLine(m.from, str(m.message), m.timestamp,
	    typeof m.seq === 'number' ? m.seq : undefined), true);
}

function onPrivate(m) {
	if (!isObj(m.from))
		return;
	seen(m.from);
	const uid = str(m.from.userId);
	const c = conv('dm', uid, true);
	addLine(c, msgLine(m.from, str(m.message), m.timestamp, undefined,
	    'in'), true);
	if (st.current !== c.key)
		note('private', str(m.message), 'Private message from ' +
		    who(m.from));
	if (st.current === c.key)
		showMembers();
}

function self(u) {
	return isObj(u) && u.clientId === st.clientId;
}

function onRoomEvent(m) {
	const t = m.type;
	if (typeof m.room !== 'string')
		return;
	const c = conv('room', m.room, t === 'user_join' && self(m.user));
	if (!c)
		return;
	if (t === 'user_join' && isObj(m.user)) {
		seen(m.user);
		c.members[str(m.user.clientId)] = m.user;
		if (self(m.user)) {
			c.joined = true;
			refreshConv(c);
			updateControls();
		} else {
			sysLine(c, who(m.user) + ' joined');
		}
	} else if (t === 'user_leave' && isObj(m.user)) {
		delete c.members[str(m.user.clientId)];
		sysLine(c, who(m.user) + ' left');
	} else if (t === 'user_list') {
		c.members = map();
		(Array.isArray(m.users) ? m.users : []).forEach((u) => {
			if (isObj(u)) {
				seen(u);
				c.members[str(u.clientId)] = u;
			}
		});
	} else if (t === 'room_deleted') {
		note('system', 'Room ' + c.name + ' was deleted.');
		dropConv(c);
		return;
	}
	if (st.current === c.key)
		showMembers();
}

/* The library gives only what the page has not shown yet, oldest
 * first. */
function onHistory(h) {
	const c = conv('room', h.room, false);
	if (!c)
		return;
	if (h.reset)
		sysLine(c, 'The room started over; its messages are ' +
		    'numbered anew.');
	if (!h.complete)
		sysLine(c, 'Some messages sent while away are no longer kept.');
	h.messages.forEach((m) => {
		seen(m.from);
		addLine(c, msgLine(m.from, str(m.message), m.timestamp, m.seq,
		    'hist'), false);
	});
}

function refused(what, e) {
	note('error', 'Could not ' + what + ': ' + (e.msg || e.message) +
	    ' (' + e.code + ')');
}

/* ---- Start over with a token --------------------------------------- */

function start(token) {
	if (!token)
		return;
	st.token = token;
	ui.login.hidden = true;
	if (st.client && st.client.state === 'signed-out') {
		st.client.auth(token).catch(() => {});
		return;
	}
	if (st.client)
		st.client.close();
	st.wasOnline = false;
	st.connNote = null;
	const c = connect('/ws', { token });
	st.client = c;
	c.on('state', (s) => {
		if (st.client === c)
			onState(s);
	});
	c.on('chat', onChat);
	c.on('private', onPrivate);
	c.on('user_join', onRoomEvent);
	c.on('user_leave', onRoomEvent);
	c.on('user_list', onRoomEvent);
	c.on('room_deleted', onRoomEvent);
	c.on('history', onHistory);
	c.on('server_shutdown', (m) => {
		connNote('The server is restarting; back in about ' +
		    Math.ceil(Math.max(0, Number(m.reconnectIn) || 0) / 1000) +
		    ' s.');
	});
	c.on('error', (m) => note('error', 'Error ' + m.code + ': ' +
	    (str(m.msg) || 'request refused')));
	c.on('rejoin_failed', (f) => {
		const r = conv('room', f.room, false);
		note('error', 'Could not join ' + f.room + ' again: ' + f.msg +
		    ' (' + f.code + ')');
		if (r)
			refreshConv(r);
	});
	c.on('message', (m) => {
		if (!isObj(m) || !KNOWN.has(m.type))
			pushed(m);
	});
}

/* ---- User actions ---------------------------------------------------- */

ui.sendForm.addEventListener('submit', (ev) => {
	ev.preventDefault();
	const c = st.convs[st.current];
	const text = ui.sendText.value;
	if (!c || !text.trim() || !st.online)
		return;
	const restore = () => {
		if (!ui.sendText.value)
			ui.sendText.value = text;
	};
	ui.sendText.value = '';
	if (c.kind === 'room') {
		st.client.chat(c.name, text).catch((e) => {
			refused('send to ' + c.name, e);
			restore();
		});
	} else {
		/* The server sends a private message to the target only, so
		 * the sender's copy is added on its ack. */
		st.client.private(c.name, text).then(() => {
			addLine(c, msgLine(myself(), text, Date.now(), undefined,
			    'out'), false);
		}, (e) => {
			refused('message ' + c.name, e);
			restore();
		});
	}
});

ui.joinForm.addEventListener('submit', (ev) => {
	ev.preventDefault();
	const name = ui.joinRoom.value.trim();
	if (!name || !st.online)
		return;
	ui.joinRoom.value = '';
	let c = conv('room', name, false);
	if (c && c.joined) {
		show(c.key);
		return;
	}
	c = conv('room', name, true);
	show(c.key);
	st.client.join(name).catch((e) => {
		refused('join ' + name, e);
		/* A room that never opened goes away; one with messages
		 * stays, marked as not joined. */
		const r = conv('room', name, false);
		if (r && !r.joined && !r.log.querySelector('li.msg'))
			dropConv(r);
	});
});

/* Open a private chat: like Join, only when signed in. */
ui.dmForm.addEventListener('submit', (ev) => {
	ev.preventDefault();
	const uid = ui.dmUser.value.trim();
	if (!uid || !st.online)
		return;
	show(conv('dm', uid, true).key);
	ui.dmUser.value = '';
	ui.sendText.focus();
});

ui.leave.addEventListener('click', () => {
	const c = st.convs[st.current];
	if (!c || c.kind !== 'room')
		return;
	st.client.leave(c.name).catch(() => {}).then(() => dropConv(c));
});

ui.membersToggle.addEventListener('click', () => {
	setMembersOpen(!document.body.classList.contains('members-open'));
});

ui.membersClose.addEventListener('click', () => setMembersOpen(false));

ui.notesClear.addEventListener('click', () => {
	ui.notes.textContent = '';
	ui.notesBox.classList.add('empty');
	st.unseenNotes = 0;
	st.connNote = null;
	ui.notesJump.hidden = true;
});

ui.notesJump.addEventListener('click', () => {
	st.unseenNotes = 0;
	ui.notesJump.hidden = true;
	document.body.classList.toggle('notes-open');
	ui.notesBox.scrollIntoView({ block: 'nearest' });
});

ui.reconnect.addEventListener('click', () => {
	if (st.client)
		st.client.reconnectNow();
});

ui.changeToken.addEventListener('click', () => {
	ui.login.hidden = !ui.login.hidden;
	if (!ui.login.hidden)
		ui.token.focus();
});

ui.login.addEventListener('submit', (ev) => {
	ev.preventDefault();
	start(ui.token.value.trim());
	ui.token.value = '';
});

/* The token in the fragment (#token=...) never reaches the server in the
 * request line or a Referer. */
function fragmentToken() {
	const h = location.hash.replace(/^#/, '');
	const v = new URLSearchParams(h).get('token');
	return v ? v.trim() : '';
}

window.addEventListener('hashchange', () => {
	const t = fragmentToken();
	if (t && t !== st.token)
		start(t);
});

/* Back on the network: try at once rather than wait the backoff. */
window.addEventListener('online', () => {
	if (st.client)
		st.client.reconnectNow();
});

setInterval(tick, 1000);
updateControls();
showMembers();
const t0 = fragmentToken();
if (t0) {
	start(t0);
} else {
	ui.login.hidden = false;
	ui.token.focus();
}
