/*
 * chat.mjs: the built-in chat page in a real browser. Debian's Chromium,
 * driven by playwright-core, opens the page as three users (alice on a
 * desktop screen, bob on a phone screen, carol on a desktop) against a
 * vkws that tests/test_browser.py started, and checks what the issue asks
 * of the page: joins seen by both sides, chat to every member, a private
 * message to its target only, server API broadcasts in the notification
 * area, markup shown as text, and no message lost across a dropped
 * connection or a server restart.
 *
 * Configuration comes as JSON in VKWS_BROWSER (see test_browser.py). The
 * server is restarted by the Python side: this script writes "@@ stop"
 * or "@@ start" on stdout and waits for the answer line on stdin. Every
 * wait has a deadline; the script exits 0 only if every check passed.
 */
import path from 'node:path';
import { ask, check, launchChromium, say as print } from './harness.mjs';

const cfg = JSON.parse(process.env.VKWS_BROWSER);
const base = cfg.base;
const T = 15000;		/* ms: deadline of one ordinary wait */
const T_RECONNECT = 45000;	/* ms: backoff plus reconnectIn, generously */

function step(s) {
	print('== ' + s);
}

/* ---- The server API ------------------------------------------------ */

async function api(method, params) {
	const r = await fetch(base + '/api', {
		method: 'POST',
		headers: { 'Authorization': 'apikey ' + cfg.apiKey,
		    'Content-Type': 'application/json' },
		body: JSON.stringify({ method, params: params || {} }),
		signal: AbortSignal.timeout(5000)
	});
	const text = await r.text();
	let body = null;
	try {
		body = JSON.parse(text);
	} catch (e) {
		body = text;
	}
	return { status: r.status, body };
}

/* ---- Pages --------------------------------------------------------- */

const problems = [];

async function openUser(browser, name, viewport, phone) {
	const ctx = await browser.newContext({ viewport, isMobile: phone,
	    hasTouch: phone, deviceScaleFactor: 1,
	    ignoreHTTPSErrors: !!cfg.tls });
	const page = await ctx.newPage();
	const u = { name, ctx, page, sent: [], sockets: [] };
	page.setDefaultTimeout(T);
	page.on('pageerror', (e) => problems.push(name + ': uncaught ' +
	    e.message));
	page.on('console', (m) => {
		/* A refused inline script or style means the page relies on
		 * something its own policy forbids. */
		if (/Content.Security.Policy|Refused to/i.test(m.text()))
			problems.push(name + ': ' + m.text());
	});
	page.on('response', (r) => {
		if (r.status() >= 400)
			problems.push(name + ': ' + r.status() + ' for ' +
			    r.url());
	});
	page.on('websocket', (ws) => {
		u.sockets.push(ws.url());
		ws.on('framesent', (f) => {
			if (typeof f.payload === 'string')
				u.sent.push(f.payload);
		});
	});
	await page.goto(base + '/#token=' + cfg.tokens[name],
	    { waitUntil: 'load' });
	await online(u);
	return u;
}

async function online(u, timeout) {
	await u.page.locator('#status[data-state="online"]').waitFor(
	    { timeout: timeout || T });
}

/* Back on the network: the page's "online" handler reconnects at once;
 * "Reconnect now" is there too if it still waits out its backoff. */
async function comeBack(u) {
	await u.ctx.setOffline(false);
	const button = u.page.locator('#reconnect');
	if (await button.isVisible())
		await button.click({ timeout: 2000 }).catch(() => {});
	await online(u, T_RECONNECT);
}

const logSel = (conv) => 'ol.log[data-conv="' + conv + '"]';

/* Wait until the conversation shows a message containing text; how is a
 * class the line must have ("hist": it came in a history reply). */
async function seeMsg(u, conv, text, how) {
	await u.page.locator(logSel(conv) + ' li.msg' + (how ? '.' + how :
	    '') + ' .text').filter({ hasText: text }).first().waitFor(
	    { state: 'attached' });
}

async function seeSys(u, conv, text) {
	await u.page.locator(logSel(conv) + ' li.sys').filter(
	    { hasText: text }).first().waitFor({ state: 'attached' });
}

async function seeNote(u, kind, text) {
	await u.page.locator('#notes li.note[data-kind="' + kind + '"]')
	    .filter({ hasText: text }).first().waitFor({ state: 'attached' });
}

async function show(u, conv) {
	await u.page.click('button.conv[data-conv="' + conv + '"]');
}

async function say(u, conv, text) {
	await show(u, conv);
	await u.page.fill('#send-text', text);
	await u.page.click('#send');
	await seeMsg(u, conv, text);
}

async function join(u, room) {
	await u.page.fill('#join-room', room);
	await u.page.click('#join-form button');
	await u.page.locator('button.conv[data-conv="#' + room +
	    '"]:not(.away)').waitFor();
}

async function countMsgs(u, conv, text) {
	return u.page.locator(logSel(conv) + ' li.msg .text').filter(
	    { hasText: text }).count();
}

/* Whether the page is no wider than its viewport. */
async function fits(u) {
	return u.page.evaluate(() =>
	    document.documentElement.scrollWidth <= window.innerWidth);
}

async function shot(u, file) {
	await u.page.screenshot({ path: path.join(cfg.out,
	    cfg.prefix + file) });
}

/* Where the header, the send box and the members panel are on screen. */
async function layout(u) {
	return u.page.evaluate(() => {
		const box = (sel) => {
			const e = document.querySelector(sel);
			const r = e.getBoundingClientRect();
			const cs = getComputedStyle(e);
			return { top: r.top, bottom: r.bottom, left: r.left,
			    right: r.right, shown: cs.display !== 'none' &&
			    cs.visibility !== 'hidden' && r.height > 0 };
		};
		return { h: window.innerHeight, w: window.innerWidth,
		    scrollY: window.scrollY,
		    page: document.documentElement.scrollHeight,
		    header: box('header.bar'), send: box('#send-form'),
		    text: box('#send-text'), members: box('#members'),
		    toggle: box('#members-toggle'), logs: box('#logs') };
	});
}

/*
 * On a 390 px phone: the header at the top and the send box at the
 * bottom of the screen, whatever the length of the conversation; the
 * members behind a toggle, not under the send box.
 */
async function phoneChecks(alice, bob) {
	step('phone layout at 390 px');
	for (let i = 1; i <= 30; i++) {
		await alice.page.fill('#send-text', 'filler line ' + i);
		await alice.page.click('#send');
	}
	await seeMsg(bob, '#general', 'filler line 30');
	await show(bob, '#general');
	/* Scroll everything that can scroll, as a thumb would. */
	await bob.page.mouse.move(200, 500);
	await bob.page.mouse.wheel(0, 3000);
	await bob.page.evaluate(() => {
		window.scrollTo(0, 100000);
		document.getElementById('logs').scrollTop = 0;
	});
	const l = await layout(bob);
	check(l.w === 390, 'bob\'s screen is 390 px wide');
	check(l.scrollY === 0 && l.page <= l.h, 'the page itself does not ' +
	    'scroll (' + l.page + ' px in ' + l.h + ')');
	check(l.header.shown && l.header.top === 0, 'the header stays at ' +
	    'the top');
	check(l.send.shown && l.text.shown && l.send.bottom <= l.h &&
	    l.send.top > l.h / 2, 'the send box stays at the bottom of the ' +
	    'screen (' + Math.round(l.send.top) + '..' +
	    Math.round(l.send.bottom) + ' of ' + l.h + ')');
	check(l.logs.bottom <= l.send.top, 'the messages end above the ' +
	    'send box');
	check(!l.members.shown && l.toggle.shown, 'the members are behind ' +
	    'the Members toggle');
	await shot(bob, 'bob-phone-scrolled.png');
	await bob.page.click('#members-toggle');
	const m = await layout(bob);
	check(m.members.shown && m.members.right <= m.w &&
	    m.members.bottom <= m.h, 'Members opens the list on the screen');
	await bob.page.locator('#member-list button[data-user="alice"]')
	    .waitFor();
	check(await fits(bob), 'no horizontal scrolling with the list open');
	await shot(bob, 'bob-phone-members.png');
	await bob.page.click('#members-close');
	check(!(await layout(bob)).members.shown, 'Close hides it again');
}

/* ---- The scenario ---------------------------------------------------- */

async function run(browser) {
	step('alice, bob and carol open the page');
	const alice = await openUser(browser, 'alice',
	    { width: 1280, height: 800 }, false);
	await alice.page.locator('button.conv[data-conv="#general"]')
	    .waitFor();
	const bob = await openUser(browser, 'bob',
	    { width: 390, height: 844 }, true);
	await seeSys(alice, '#general', 'Bob joined');
	await alice.page.locator('#member-list button[data-user="bob"]')
	    .waitFor();
	/* bob's phone shows the members behind a toggle. */
	await bob.page.locator('#member-list button[data-user="alice"]')
	    .waitFor({ state: 'attached' });
	check(true, 'alice sees bob join general; bob lists alice');
	const carol = await openUser(browser, 'carol',
	    { width: 1280, height: 800 }, false);
	await alice.page.locator('#member-list button[data-user="carol"]')
	    .waitFor();

	step('rooms: bob joins lobby, then alice; bob sees alice join');
	await join(bob, 'lobby');
	await join(alice, 'lobby');
	await seeSys(bob, '#lobby', 'Alice joined');
	await bob.page.locator('#member-list button[data-user="alice"]')
	    .waitFor({ state: 'attached' });
	check(true, 'bob sees alice join lobby and lists her');

	step('chat reaches every member, sender included');
	await say(alice, '#lobby', 'hello lobby from alice');
	await seeMsg(bob, '#lobby', 'hello lobby from alice');
	await say(bob, '#lobby', 'hello lobby from bob');
	await seeMsg(alice, '#lobby', 'hello lobby from bob');
	check(await alice.page.locator(logSel('#lobby') +
	    ' li.msg.own .who').first().textContent() === 'Alice',
	    'alice\'s own room message is labelled with her name');
	await say(bob, '#general', 'hi general from bob');
	await seeMsg(alice, '#general', 'hi general from bob');
	await seeMsg(carol, '#general', 'hi general from bob');
	check(await countMsgs(carol, '#lobby', 'hello lobby') === 0,
	    'carol, not in lobby, did not get its chat');
	check(true, 'chat reaches both users');

	step('markup in a message is shown as text');
	const evil = '<script>window.__xss=1</script><img src=x ' +
	    'onerror="window.__xss=2"><b>bold?</b>';
	await say(bob, '#general', evil);
	await seeMsg(alice, '#general', 'bold?');
	const xss = await alice.page.evaluate((s) => ({
		text: Array.from(document.querySelectorAll(
		    'ol.log li.msg .text')).some((e) => e.textContent === s),
		nodes: document.querySelectorAll('#logs script, #logs img, ' +
		    '#logs b').length,
		ran: window.__xss
	}), evil);
	check(xss.text, 'the markup arrives as its literal text');
	check(xss.nodes === 0 && xss.ran === undefined,
	    'no element was made from it and nothing ran');

	step('a private message reaches its target only');
	await show(alice, '#general');
	await alice.page.click('#member-list button[data-user="bob"]');
	await alice.page.fill('#send-text', 'psst, bob only');
	await alice.page.click('#send');
	await seeMsg(alice, '@bob', 'psst, bob only', 'out');
	check(await alice.page.locator(logSel('@bob') +
	    ' li.msg.out .who').first().textContent() === 'Alice',
	    'her own private message is labelled with her name too');
	const dmMembers = await alice.page.locator('#member-list button')
	    .evaluateAll((bs) => bs.map((b) => b.dataset.user).sort());
	check(JSON.stringify(dmMembers) === '["alice","bob"]',
	    'the members column of the private chat lists alice and bob');
	await seeNote(bob, 'private', 'psst, bob only');
	await seeMsg(bob, '@alice', 'psst, bob only', 'in');
	/* Whatever the server queued for carol before the marker has come
	 * once the marker is there. */
	await say(alice, '#general', 'marker after the private message');
	await seeMsg(carol, '#general', 'marker after the private message');
	check(!(await carol.page.evaluate(() =>
	    document.body.textContent.includes('psst, bob only'))),
	    'carol never saw the private message');
	check(true, 'bob got the private message, as a notification too');

	step('server API broadcasts land in the notification area');
	const b = await api('broadcastToAll', { data: { type: 'notification',
	    title: 'Maintenance', content: 'vkws restarts at noon' } });
	let haveApi = b.status === 200 && b.body && b.body.code === 0;
	if (!haveApi) {
		process.stdout.write('\n!!!!!!!! SKIPPED: POST /api ' +
		    'broadcastToAll answered ' + b.status + ' ' +
		    JSON.stringify(b.body) + '; the broadcast, alert and ' +
		    'drop checks did not run !!!!!!!!\n\n');
	} else {
		await seeNote(alice, 'notification', 'vkws restarts at noon');
		await seeNote(bob, 'notification', 'vkws restarts at noon');
		await seeNote(carol, 'notification', 'vkws restarts at noon');
		check(b.body.data.delivered >= 3,
		    'broadcastToAll shown by alice, bob and carol');
		const a = await api('sendToUser', { userId: 'bob',
		    data: { type: 'alert', content: 'disk almost full' } });
		check(a.status === 200 && a.body.code === 0, 'sendToUser ok');
		await seeNote(bob, 'alert', 'disk almost full');
		const o = await api('broadcastToRoom', { room: 'lobby',
		    data: { type: 'weather', sky: 'clear' } });
		check(o.status === 200 && o.body.code === 0,
		    'broadcastToRoom ok');
		await seeNote(alice, 'weather', 'clear');
		check(true, 'alert and an unknown type are shown too');
	}

	if (haveApi) {
		step('a dropped connection rejoins with since and misses ' +
		    'nothing');
		await alice.ctx.setOffline(true);
		const conns = await api('getAllConnections');
		const mine = conns.body.data.filter((c) => c.userId ===
		    'alice');
		check(mine.length === 1, 'alice has one connection');
		await api('disconnect', { clientId: mine[0].clientId,
		    code: 4000, reason: 'test drop' });
		await alice.page.locator('#status[data-state="waiting"]')
		    .waitFor();
		alice.sent.length = 0;
		await say(bob, '#lobby', 'lobby while alice was away');
		await say(bob, '#general', 'general while alice was away');
		await comeBack(alice);
		await seeMsg(alice, '#lobby', 'lobby while alice was away',
		    'hist');
		await seeMsg(alice, '#general', 'general while alice was away',
		    'hist');
		const rejoin = alice.sent.map((s) => JSON.parse(s)).find(
		    (m) => m.type === 'join' && m.room === 'lobby');
		/* since is the seq before her last (seq 2): that message
		 * comes back as the anchor that shows the room is the same. */
		check(rejoin && rejoin.since === 1, 'alice rejoined lobby with ' +
		    'since ' + (rejoin && rejoin.since));
		check(await countMsgs(alice, '#lobby',
		    'hello lobby from alice') === 1 &&
		    await countMsgs(alice, '#general', 'hi general from bob') ===
		    1, 'nothing is shown twice');
	}

	step('the server restarts; the page comes back and catches up');
	await ask('stop');
	for (const u of [alice, bob]) {
		await seeNote(u, 'system', 'restarting');
		await u.page.locator('#status:not([data-state="online"])')
		    .waitFor();
	}
	check(true, 'both were told of the shutdown and went offline');
	/* The server is down: alice cannot come back before bob has
	 * written, however short its reconnectIn. */
	await alice.ctx.setOffline(true);
	await ask('start');
	await online(bob, T_RECONNECT);
	await bob.page.locator('button.conv[data-conv="#lobby"]:not(.away)')
	    .waitFor({ timeout: T });
	await say(bob, '#lobby', 'lobby after the restart');
	await say(bob, '#general', 'general after the restart');
	alice.sent.length = 0;
	await comeBack(alice);
	await seeMsg(alice, '#lobby', 'lobby after the restart', 'hist');
	await seeMsg(alice, '#general', 'general after the restart', 'hist');
	check(true, 'alice shows what bob wrote while she was away (' +
	    (cfg.dataDir ? 'with --data-dir' : 'without --data-dir') + ')');
	await say(bob, '#lobby', 'lobby once alice is back');
	await seeMsg(alice, '#lobby', 'lobby once alice is back');
	for (const u of [alice, bob]) {
		await seeNote(u, 'system', 'Reconnected');
		check(await u.page.locator('#notes li.note').filter(
		    { hasText: 'restarting' }).count() === 0, u.name +
		    ': "restarting" was replaced by "Reconnected"');
	}
	check(await countMsgs(alice, '#lobby', 'lobby after the restart') ===
	    1, 'and shows it once');
	check(true, 'live chat flows again after the reconnect');

	step('a refused token is shown, and not retried');
	const bad = await browser.newContext({ viewport: { width: 390,
	    height: 844 }, isMobile: true, ignoreHTTPSErrors: !!cfg.tls });
	const bp = await bad.newPage();
	bp.setDefaultTimeout(T);
	await bp.goto(base + '/#token=' + cfg.tokens.alice.slice(0, -4) +
	    'AAAA');
	/* On a phone the notifications are behind their header button;
	 * the reason is shown in the token form that opens. */
	await bp.locator('#notes li.note[data-kind="error"]').filter(
	    { hasText: 'Authentication failed' }).waitFor(
	    { state: 'attached' });
	await bp.locator('#login:not([hidden])').waitFor();
	await bp.locator('#login-msg').filter(
	    { hasText: 'Authentication failed' }).waitFor();
	check(await bp.locator('#status').getAttribute('data-state') ===
	    'offline' && await bp.locator('#reconnect').isHidden(),
	    'the page says why, asks for a token and does not reconnect');
	check(await bp.locator('#join-form button').isDisabled() &&
	    await bp.locator('#dm-form button').isDisabled(),
	    'signed out, Join and Open are both disabled');
	await bp.screenshot({ path: path.join(cfg.out, cfg.prefix +
	    'bad-token-phone.png') });
	await bad.close();

	step('layout and screenshots');
	await online(carol, T_RECONNECT);
	await carol.page.locator('button.conv[data-conv="#general"]' +
	    ':not(.away)').waitFor();
	await seeMsg(carol, '#general', 'general after the restart');
	check(true, 'carol is back too, and caught up');
	await show(alice, '#general');
	await show(bob, '#general');
	for (const u of [alice, bob, carol]) {
		check(await fits(u), u.name + ': no horizontal scrolling at ' +
		    u.page.viewportSize().width + ' px');
	}
	const ws = (cfg.tls ? 'wss://' : 'ws://') + new URL(base).host + '/ws';
	check([alice, bob, carol].every((u) => u.sockets.length > 0 &&
	    u.sockets.every((s) => s === ws)), 'every socket went to ' + ws);
	await shot(alice, 'alice-desktop.png');
	await phoneChecks(alice, bob);
	await shot(bob, 'bob-phone.png');
	await shot(carol, 'carol-desktop.png');
	await alice.page.setViewportSize({ width: 390, height: 844 });
	check(await fits(alice), 'alice: no horizontal scrolling at 390 px');
	await shot(alice, 'alice-phone.png');
	await bob.page.setViewportSize({ width: 1280, height: 800 });
	check(await fits(bob), 'bob: no horizontal scrolling at 1280 px');
	await shot(bob, 'bob-desktop.png');

	/* Failed connection attempts while the server was down are the
	 * only errors expected; anything else is a problem. */
	const real = problems.filter((p) => !/WebSocket/.test(p));
	check(real.length === 0, 'no page errors, policy violations or ' +
	    'failed requests' + (real.length ? ': ' + real.join('; ') : ''));
}

const browser = await launchChromium(cfg.chromium);
let rc = 0;
try {
	await run(browser);
	step('all checks passed');
} catch (e) {
	process.stderr.write('FAILED: ' + (e.message || e) + '\n' +
	    (e.stack || '') + '\n');
	if (problems.length)
		process.stderr.write('page problems:\n  ' +
		    problems.join('\n  ') + '\n');
	rc = 1;
} finally {
	await browser.close();
}
process.exit(rc);
