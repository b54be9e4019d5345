/*
 * vkws.d.ts: TypeScript declarations of vkws.js (the client of the vkws
 * WebSocket server). The wire shapes follow PROTOCOL.md sections 2-5.
 */

export declare const VERSION: string;

/** The user object of PROTOCOL.md 3 (`from`, `user`). */
export interface User {
	clientId: string;
	userId: string;
	userInfo: Record<string, unknown>;
}

export interface ChatMessage {
	type: 'chat';
	room: string;
	seq: number;
	from: User;
	message: string;
	timestamp: number;
}

export interface PrivateMessage {
	type: 'private';
	from: User;
	message: string;
	timestamp: number;
}

export interface UserJoin {
	type: 'user_join';
	room: string;
	user: User;
	timestamp: number;
}

export interface UserLeave {
	type: 'user_leave';
	room: string;
	user: User;
	timestamp: number;
}

export interface UserList {
	type: 'user_list';
	room: string;
	users: User[];
	timestamp: number;
}

/** A history reply, reduced to what this client has not seen yet. */
export interface History {
	type: 'history';
	room: string;
	/** Not seen before, oldest first. */
	messages: ChatMessage[];
	/** False when part of the requested gap is no longer kept. */
	complete: boolean;
	/** The room started over (its seq went back): every message is new. */
	reset: boolean;
	/** This answers a rejoin (the client had seen messages of the room). */
	resumed: boolean;
	/** The server's message as received. */
	raw: { type: 'history'; room: string; messages: ChatMessage[];
	    complete: boolean };
}

export interface RoomDeleted {
	type: 'room_deleted';
	room: string;
}

export interface AuthReply {
	type: 'auth';
	code: number;
	msg?: string;
	clientId?: string;
	userId?: string;
	id?: number | string;
}

export interface ServerShutdown {
	type: 'server_shutdown';
	reconnectIn: number;
}

export interface ErrorReply {
	type: 'error';
	code: number;
	msg?: string;
}

export type State = 'connecting' | 'online' | 'offline' | 'signed-out' |
    'closed';

export interface StateEvent {
	state: State;
	/** offline: ms until the next attempt, and when (Date.now() based). */
	retryIn?: number;
	retryAt?: number;
	/** offline, signed-out: the close code and reason (0: no socket). */
	code?: number;
	reason?: string;
	/** signed-out: why. */
	msg?: string;
	/** online: */
	clientId?: string;
	userId?: string;
	/** online: signed in again as the same user after a drop. */
	resumed?: boolean;
}

export interface RejoinFailed {
	room: string;
	code: number | string;
	msg: string;
}

export interface Events {
	state: StateEvent;
	chat: ChatMessage;
	private: PrivateMessage;
	user_join: UserJoin;
	user_leave: UserLeave;
	user_list: UserList;
	history: History;
	room_deleted: RoomDeleted;
	auth: AuthReply;
	error: ErrorReply;
	server_shutdown: ServerShutdown;
	rejoin_failed: RejoinFailed;
	/** Every message as received (JSON-parsed, or the raw data). */
	message: unknown;
}

/**
 * Server codes of PROTOCOL.md 5 (-1 ... -7), or what happened on the
 * client's side.
 */
export type ErrorCode = number | 'timeout' | 'offline' | 'disconnected' |
    'signed-out' | 'closed' | 'invalid';

export declare class VkwsError extends Error {
	constructor(code: ErrorCode, msg: string);
	code: ErrorCode;
	msg: string;
}

/** The WHATWG WebSocket constructor, or anything shaped like it. */
export type WebSocketCtor = new (url: string,
    protocols?: string | string[]) => {
	readyState: number;
	send(data: string): void;
	close(code?: number, reason?: string): void;
	onopen: ((ev: unknown) => void) | null;
	onmessage: ((ev: { data: unknown }) => void) | null;
	onclose: ((ev: { code: number; reason: string }) => void) | null;
	onerror: ((ev: unknown) => void) | null;
};

export interface Options {
	/** A JWT (PROTOCOL.md 2). */
	token?: string;
	/** Asked at every sign-in, and before a JWT's exp. */
	getToken?: () => string | Promise<string>;
	/** For runtimes without a global WebSocket. */
	WebSocket?: WebSocketCtor;
	/** ms, defaults 1000 and 30000. */
	backoffMin?: number;
	backoffMax?: number;
	/** ms a request may wait for its answer, offline time included. */
	timeout?: number;
	/** ms a socket may take to open (15000); then it is retried. */
	connectTimeout?: number;
	/** Requests kept while offline (256). */
	queueMax?: number;
	/** ms of silence before a ping (45000); twice it: reconnect. */
	quietMs?: number;
	/** ms before exp to re-authenticate (60000). */
	refreshBefore?: number;
	/** Largest server_shutdown.reconnectIn honoured, ms (60000). */
	shutdownMax?: number;
	/** Subprotocols offered (["vkws.json"]). */
	protocols?: string[];
	/** Random numbers in [0, 1) for the jitter (Math.random). */
	random?: () => number;
}

export declare class Client {
	readonly url: string;
	readonly state: State;
	readonly clientId: string;
	readonly userId: string;

	on<K extends keyof Events>(type: K, fn: (v: Events[K]) => void):
	    () => void;
	/** Any other type the server sends (server API broadcasts). */
	on(type: string, fn: (v: any) => void): () => void;
	once<K extends keyof Events>(type: K, fn: (v: Events[K]) => void):
	    () => void;
	once(type: string, fn: (v: any) => void): () => void;
	off(type: string, fn: (v: any) => void): void;

	join(room: string, opts?: { since?: number }): Promise<{ code: 0 }>;
	leave(room: string): Promise<{ code: 0 }>;
	/** seq null: acked, but the connection dropped before its copy. */
	chat(room: string, text: string):
	    Promise<{ seq: number | null; timestamp: number | null }>;
	private(userId: string, text: string): Promise<{ code: 0 }>;
	auth(token: string): Promise<AuthReply>;
	send(msg: { type: string; [k: string]: unknown }): Promise<{ code: 0 }>;

	/** Rooms joined, and to be joined again on reconnect. */
	joinedRooms(): string[];
	/** The last seq seen in room, 0 if none. */
	lastSeq(room: string): number;
	reconnectNow(): void;
	close(): void;
}

export declare function connect(url: string, opts?: Options): Client;

declare const _default: {
	connect: typeof connect;
	Client: typeof Client;
	VkwsError: typeof VkwsError;
	VERSION: string;
};
export default _default;
