/*
 * types.ts: clients/js/vkws.d.ts in use, compiled (never run) by
 * tests/test_client_js.py with tsc --noEmit --strict. A declaration that
 * stops matching this ordinary code fails the test.
 */
import vkws, { connect, Client, VkwsError, ChatMessage, History,
    StateEvent } from '../../clients/js/vkws.js';

async function main(): Promise<void> {
	const c: Client = connect('ws://127.0.0.1:8080/ws', {
		getToken: async () => 'jwt',
		backoffMin: 500,
		timeout: 10000
	});
	const off = c.on('chat', (m: ChatMessage) => {
		const seq: number = m.seq;
		const who: string = m.from.userId;
		void seq;
		void who;
	});
	off();
	c.on('history', (h: History) => {
		const n: number = h.messages.length;
		const gap: boolean = !h.complete || h.reset;
		void n;
		void gap;
	});
	c.on('state', (s: StateEvent) => {
		if (s.state === 'offline' && s.retryIn !== undefined)
			void (s.retryIn + 1);
	});
	c.on('notification', (m) => void m.title);
	await c.join('lobby', { since: 3 });
	const r = await c.chat('lobby', 'hi');
	const seq: number | null = r.seq;
	void seq;
	await c.private('bob', 'psst');
	await c.auth('jwt2');
	await c.leave('lobby');
	try {
		await c.send({ type: 'join', room: 'x' });
	} catch (e) {
		if (e instanceof VkwsError && e.code === -5)
			void e.msg;
	}
	const rooms: string[] = c.joinedRooms();
	void rooms;
	void c.lastSeq('lobby');
	c.reconnectNow();
	c.close();
	void vkws.VERSION;
	const c2 = vkws.connect('/ws', { token: 't' });
	void c2.state;
}

void main;
