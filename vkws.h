/*
 * vkws.h: limits, run-time configuration, and the public C API that
 * mirrors vk.websocket.*. Every table in vkws is a static array sized by
 * the constants below; a run-time flag may lower a limit, never raise it.
 * Build with -DVKWS_PROFILE_SMALL (make PROFILE=small) for a 32 MB router.
 */
#ifndef VKWS_H
#define VKWS_H

#include <stddef.h>
#include <stdint.h>

/* ---- Limits (compile time) ---------------------------------------- */

#ifdef VKWS_PROFILE_SMALL
#define VKWS_MAX_CONNS 64	/* connection slots, HTTP and WebSocket */
#define VKWS_MAX_ROOMS 32	/* rooms, the default room included */
#define VKWS_HISTORY 20		/* chat messages kept per room */
#elif defined(VKWS_PROFILE_BENCH)
#define VKWS_MAX_CONNS 8192	/* bench/run holds 5000 idle connections */
#define VKWS_MAX_ROOMS 256
#define VKWS_HISTORY 50
#else
#define VKWS_MAX_CONNS 1024
#define VKWS_MAX_ROOMS 256
#define VKWS_HISTORY 50
#endif

/* Largest incoming WebSocket message on /ws, all fragments (bytes).
 * PROTOCOL.md 7 asks for at least 16 KiB. /echo streams (conn.c,
 * echo_input) and holds no message, so it has no limit. */
#define VKWS_MAX_MSG 16384
/* Receive buffer per slot: the fragments of an open message, then one
 * partial frame, which may be a control frame of up to 2 + 4 + 125 bytes
 * or the header of the next fragment. On /echo: one partial header or
 * control frame, or payload read but not yet taken by the send queue. */
#define VKWS_RX_BUF (VKWS_MAX_MSG + 256)
/* Largest request head (bytes); a larger one is answered 431. */
#define VKWS_MAX_HEAD 8192
/* Largest POST /api body (bytes); PROTOCOL.md 7 asks for 64 KiB. */
#define VKWS_MAX_BODY 65536
/* Bodies longer than what follows a head in the receive buffer are
 * read into one of these static buffers; when all are taken, POST /api
 * is answered 503 with Retry-After. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_API_BODIES 1
#else
#define VKWS_API_BODIES 4
#endif
/* jsmn tokens for one /api body: a value takes at least one byte and a
 * separator, so no body of VKWS_MAX_BODY bytes needs more. */
#ifndef VKWS_PROFILE_SMALL
#define VKWS_API_TOKENS (VKWS_MAX_BODY / 2 + 2)
#else
/* PROFILE=small keeps 2048 (40 KiB of the 640 the full table takes): a
 * body of more JSON values than that is answered -5. */
#define VKWS_API_TOKENS 2048
#endif
/* Largest frame the server sends (payload bytes): a broadcast of the
 * largest API body plus its envelope. */
#define VKWS_MAX_OUT (VKWS_MAX_BODY + 1024)
/* Largest --sndbuf (bytes): the kernel's send buffer of a connection is
 * memory too; a router sets it low so a slow reader's bytes wait in the
 * pool, where the cap sees them. */
#define VKWS_SNDBUF_MAX (4 * 1024 * 1024)
/* A connection's cap: one largest frame with its header. The bytes live
 * in the shared chunk pool below, taken only while they are in flight; a
 * reader whose backlog (what a write left unsent when its socket took no
 * more) would pass the cap with the next frame is a slow consumer and is
 * closed with 1013. Its input is read only while its queue is under the
 * cap (backpressure). */
#define VKWS_TX_BUF (VKWS_MAX_OUT + 16)

/* The chunk pool (pool.c): send queues, client data and room history
 * are made of chunks of VKWS_CHUNK bytes from one static array. A frame
 * sent to many (broadcast, room chat, notifications) is written into
 * chunks once and every queue points at it. */
#define VKWS_CHUNK 4096		/* bytes of one chunk: a page */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_POOL_CHUNKS 64	/* 256 KiB: three largest frames */
#define VKWS_RX_BUFS 4		/* receive buffers for split frames */
#elif defined(VKWS_PROFILE_BENCH)
#define VKWS_POOL_CHUNKS 8192	/* 32 MiB */
#define VKWS_RX_BUFS 256
#else
#define VKWS_POOL_CHUNKS 640	/* 2.5 MiB: 36 largest frames */
#define VKWS_RX_BUFS 96		/* more than --max-per-ip (64) partial heads */
#endif
/* Queue segments (8 bytes each): a queue points at chunks through
 * them, one per chunk of a frame, so a shared frame costs each reader a
 * few segments, not its bytes. */
#ifdef VKWS_PROFILE_BENCH
#define VKWS_POOL_SEGS 65000	/* the most a 16-bit index reaches */
#else
#define VKWS_POOL_SEGS ((size_t)VKWS_POOL_CHUNKS * 16)
#endif
/* Low-water mark (free chunks): below it a connection that already has
 * more than VKWS_TX_SLOW bytes queued is a slow consumer (1013), new HTTP
 * requests are answered 503 and history keeps no new chunks, so the
 * last chunks go to readers that keep up. */
#define VKWS_POOL_LOW_DIV 8	/* the mark is an eighth of the pool */
#define VKWS_TX_SLOW 16384
/* Chunks room history may hold in all (the rest is for traffic). */
#define VKWS_HISTORY_SHARE 4	/* a quarter of the pool */
/* Largest HTTP response head (bytes), and room a send queue must have
 * before the next request on the connection is read, so that a reply of
 * any size the server makes fits whole (pipelined requests wait). */
#define VKWS_HTTP_HEAD_MAX 1024
#define VKWS_HTTP_REPLY_ROOM (VKWS_TX_BUF - VKWS_CLOSE_RESERVE)
/* Largest /api or /metrics response body (bytes); a reply that does
 * not fit is answered -5 instead of being cut. */
#define VKWS_API_OUT (VKWS_HTTP_REPLY_ROOM - VKWS_HTTP_HEAD_MAX)
/* Bytes written to one connection per loop pass, so one fast reader
 * cannot starve the rest. */
#define VKWS_WRITE_CAP 65536
/* conn.tx_left counts the backlog in these (16 bits: up to 4 MiB). */
#define VKWS_TX_UNIT 64
_Static_assert((size_t)VKWS_TX_BUF / VKWS_TX_UNIT < 0xFFFF,
    "a backlog past the cap fits conn.tx_left");
/* An echo this large (bytes) is written from the read buffer, not
 * copied into the send queue first. */
#define VKWS_DIRECT_MIN 4096
/* Shared read buffer: one read() of as much as a socket has. */
#define VKWS_SCRATCH 65536

/* Identity and client data. */
#define VKWS_UID_MAX 64		/* bytes of a user id (PROTOCOL.md 7) */
/* bytes of a clientId string: 16 hex digits, or in a cluster "NODE-"
 * and at most 15 (vkws.c keeps the counter part to 44 bits) */
#define VKWS_CLIENT_ID_MAX 24
#define VKWS_USERINFO_MAX 2048	/* bytes of a connection's userInfo JSON */
#define VKWS_TOKEN_MAX 4096	/* bytes of a JWT */
#define VKWS_TOKEN_TTL_MAX 315360000	/* vkws token --ttl: ten years (s) */
#define VKWS_SECRET_MAX 256	/* bytes of the HMAC secret */
#define VKWS_ROOM_NAME_MAX 64	/* bytes of a room name */
#define VKWS_ROOMS_PER_CONN 16	/* rooms one connection may be in */
/* Bytes of a user_list (the users a joiner is told of, some 250 plain
 * ones; the rest are counted in "more"): a quarter of a largest frame,
 * so that a joiner of a big room that is slow to start reading keeps
 * room under its backlog cap (VKWS_TX_BUF) for the notices that follow
 * the list: the user_join notices the churn rule held back (PROTOCOL.md
 * 8) go out together a second after their connections opened, ~36 KB
 * to every member when 256 connections opened at once. Cluster joins
 * name 256 at most. */
#define VKWS_USER_LIST_BYTES 16384
#define VKWS_REQ_ID_MAX 64	/* bytes of a string request id */
#define VKWS_JSON_TOKENS 2048	/* jsmn tokens for one request */
#define VKWS_MAX_ORIGINS 8	/* --allowed-origin entries */
#define VKWS_ORIGIN_MAX 128	/* bytes of one allowed origin */

/* Deadlines (seconds), each lowered or raised by its flag. */
#define VKWS_HANDSHAKE_TIMEOUT 10	/* request head complete */
#define VKWS_AUTH_TIMEOUT 10		/* --auth-timeout */
#define VKWS_PING_INTERVAL 30		/* --ping-interval */
#define VKWS_IDLE_TIMEOUT 75		/* --idle-timeout */
#define VKWS_CLOSE_TIMEOUT 5		/* wait for the peer's close */
#define VKWS_SHUTDOWN_GRACE 2		/* SIGTERM: flush, then exit */
#define VKWS_ACTIVE_WINDOW 60		/* --active-window */
/* server_shutdown.reconnectIn is spread over 0..this (ms). */
#define VKWS_RECONNECT_SPREAD_MS 5000

/*
 * Admission (PROTOCOL.md 8). Unproven connections (HTTP requests, TLS
 * handshakes, chat WebSockets not yet authenticated) share at most
 * --max-pending slots; when a new connection finds that share full (or
 * no free slot at all) the oldest unproven connection is closed to make
 * room, so a flood of them cannot lock out the people behind it.
 */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_MAX_PENDING 16
#else
#define VKWS_MAX_PENDING 128
#endif
/* Requests one HTTP connection may carry (--http-max-requests); it is
 * closed after the last one, or --handshake-timeout seconds after it was
 * accepted without an upgrade, whichever comes first. */
#define VKWS_HTTP_MAX_REQUESTS 100
/* Connections of one peer address at once, every state counted
 * (--max-per-ip, 0: off). IPv4-mapped IPv6 counts as IPv4. */
#define VKWS_MAX_PER_IP 64
/* A few connections past an address's cap are kept just long enough to
 * answer 503 with Retry-After; more are closed at accept. */
#define VKWS_PER_IP_OVER 4
/* Upgrades per second of one address or one user (--reconnect-rate,
 * 0: off), and the burst allowed at once (--reconnect-burst). */
#define VKWS_RECONNECT_RATE 5
#define VKWS_RECONNECT_BURST 20
#define VKWS_RECONNECT_MAX 1000	/* highest value of either flag */
/* Retry-After of a 503 (seconds): past a reconnect rate (its bucket has
 * a token again within a second at any rate), and when a table, an
 * address or a buffer pool is full (nothing says when a place frees). */
#define VKWS_RETRY_RATE_S 1
#define VKWS_RETRY_FULL_S 5
/* ... and when every /api body buffer is taken (each frees once its
 * request is read, within the handshake timeout). */
#define VKWS_RETRY_BODY_S 1
/* user_join and user_leave of a connection younger than this (ms) are
 * held back (and dropped if it closes first), so a reconnect loop does
 * not flood a room with notifications. */
#define VKWS_CHURN_MS 1000
/*
 * Peer addresses and users tracked for --max-per-ip and the reconnect
 * rate (admit.c): an open-addressing table with a keyed hash, looked up
 * within VKWS_ADDR_PROBES entries. Entries holding connections are at
 * most one per slot, and the table has twice as many entries. An entry
 * whose bucket has refilled and that holds no connection is free again.
 * A key whose window is full anyway is not tracked: it fails open (not
 * limited) rather than being refused, so filling the table locks no one
 * out; the unproven budget still bounds what an untracked peer holds.
 */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_ADDR_TABLE 256	/* entries, a power of two */
#elif defined(VKWS_PROFILE_BENCH)
#define VKWS_ADDR_TABLE 32768
#else
#define VKWS_ADDR_TABLE 4096
#endif
#define VKWS_ADDR_PROBES 16	/* entries looked at per lookup */
#define VKWS_RATE 50		/* messages per second (--rate) */
#define VKWS_RATE_GRACE 10	/* seconds over the rate before 1008 */

_Static_assert(VKWS_TX_BUF >= VKWS_MAX_OUT + 14,
    "a send queue holds one largest frame");
_Static_assert(VKWS_RX_BUF >= VKWS_MAX_MSG + 14 + 131,
    "a receive buffer holds a whole message plus a control frame");
_Static_assert(VKWS_POOL_SEGS < 65535 && VKWS_RX_BUFS < 65535,
    "pool indexes fit 16 bits");
/* Fewest chunks --pool-chunks may leave: two largest frames. */
#define VKWS_POOL_MIN ((size_t)2 * (VKWS_TX_BUF / VKWS_CHUNK + 2))
_Static_assert(VKWS_POOL_CHUNKS >= VKWS_POOL_MIN,
    "the pool holds two largest frames");
_Static_assert(VKWS_USERINFO_MAX <= VKWS_CHUNK, "userInfo fits a chunk");
_Static_assert(VKWS_USER_LIST_BYTES <= VKWS_MAX_OUT &&
    VKWS_USER_LIST_BYTES >= 256 + VKWS_UID_MAX + VKWS_USERINFO_MAX,
    "a user_list is one frame and names one largest user at least");
_Static_assert(VKWS_MAX_HEAD <= VKWS_RX_BUF,
    "a request head is read into the receive buffer");

/* TLS engines: connections over --tls-listen at once. Each engine holds
 * a full 16709-byte input buffer (a peer may send records of 16 KiB),
 * so the pool is much smaller than the slot table; a TLS connection over
 * it is closed at accept and counted in refused_tls. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_MAX_TLS_CONNS 8
#else
#define VKWS_MAX_TLS_CONNS 32
#endif
/* DER bytes of the --cert chain, and certificates in it. Two chains are
 * kept, so that SIGHUP can load a new one beside the one in use. */
#define VKWS_TLS_CHAIN_MAX 16384
#define VKWS_TLS_CHAIN_CERTS 8
/* Plaintext bytes of one outgoing TLS record. We choose our record
 * sizes, so the output buffer need not hold a 16 KiB record; BearSSL
 * rounds to 512, 1024, 2048, 4096 or 16384. */
#define VKWS_TLS_RECORD_OUT 4096
/* TLS sessions remembered for resumption (100 bytes each). */
#define VKWS_TLS_SESSIONS 64
/* Largest --cert or --key file read (bytes). */
#define VKWS_TLS_FILE_MAX 1048576

_Static_assert(VKWS_MAX_TLS_CONNS >= 1 && VKWS_MAX_TLS_CONNS < 65535,
    "a TLS engine index fits conn.tls_slot");
_Static_assert(VKWS_TLS_RECORD_OUT == 512 || VKWS_TLS_RECORD_OUT == 1024 ||
    VKWS_TLS_RECORD_OUT == 2048 || VKWS_TLS_RECORD_OUT == 4096 ||
    VKWS_TLS_RECORD_OUT == 16384, "a record size BearSSL uses as given");

/* Slots kept beyond --max-conns for HTTP requests, so that an upgrade
 * over the limit can still be read and answered 503. */
#define VKWS_SPARE_SLOTS 16
#define VKWS_SLOTS (VKWS_MAX_CONNS + VKWS_SPARE_SLOTS)
_Static_assert(VKWS_ADDR_TABLE >= 2 * VKWS_SLOTS &&
    (VKWS_ADDR_TABLE & (VKWS_ADDR_TABLE - 1)) == 0,
    "the address table is a power of two with room for every slot");
_Static_assert(VKWS_SLOTS < 65535, "a slot index fits 16 bits");
/* Connections accepted per loop pass, so a connect flood cannot starve
 * the connections already open. */
#define VKWS_ACCEPT_BURST 64
/* Pause before polling the listener again after EMFILE/ENFILE (ms). */
#define VKWS_ACCEPT_BACKOFF_MS 100
/* Ready descriptors taken from the kernel per wait (epoll backend): the
 * epoll_event array is static, 12 bytes each. More ready ones stay in
 * the kernel's ready list, which hands them out in turn next pass, so
 * none starves; 256 is more than one pass serves well at once. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_POLL_EVENTS 64
#else
#define VKWS_POLL_EVENTS 256
#endif
_Static_assert(VKWS_POLL_EVENTS >= 8, "a wait returns a useful batch");
/* Bytes reserved at the end of every send queue for a close frame, so a
 * connection can always be told why it is closed. */
#define VKWS_CLOSE_RESERVE (2 + 125)

/* ---- The cluster link (cluster.c, issue 15) ------------------------- */

/* Bytes of a --node ID: 8 random hex digits by default; kept short
 * because it is part of every clientId. */
#define VKWS_NODE_ID_MAX 8
_Static_assert(VKWS_NODE_ID_MAX + 1 + 15 <= VKWS_CLIENT_ID_MAX,
    "a cluster clientId fits");
/* Bytes of a --cluster NAME, the prefix of every Redis key. */
#define VKWS_CLUSTER_NAME_MAX 32
/* The envelope around the largest thing the link carries whole (bytes):
 * RESP headers, the script sha, keys ("{NAME:ROOM}:..."), the bus name
 * and the bus header ("C NODE TAG SEQ ROOM\n"), a request id. */
#define VKWS_REDIS_ENVELOPE 2048
/* Requests queued to Redis (bytes): at least one request of the largest
 * kind whole (a chat frame or a forwarded API body of VKWS_MAX_OUT and
 * its envelope); the default build room for a few hundred chats more.
 * Full: the operation answers -7. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_REDIS_OUT (VKWS_MAX_OUT + VKWS_REDIS_ENVELOPE)
#else
#define VKWS_REDIS_OUT (2 * VKWS_MAX_OUT)
#endif
/* Replies and pub/sub messages read from Redis (bytes): at least one
 * whole bus message (a chat frame or an API body or reply of up to
 * VKWS_MAX_OUT, with its envelope) or reply (a join's history and
 * member list, capped in bytes below). */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_REDIS_IN (VKWS_MAX_OUT + VKWS_REDIS_ENVELOPE)
#else
#define VKWS_REDIS_IN (2 * VKWS_MAX_OUT)
#endif
/* Redis's AUTH (--redis-user, --redis-password-file): the longest user
 * name and password (bytes). */
#define VKWS_REDIS_USER_MAX 64
#define VKWS_REDIS_PASS_MAX 256
/* The subscription link only ever sends AUTH and SUBSCRIBE with the bus
 * name (bytes). */
#define VKWS_REDIS_SUB_OUT 1024
_Static_assert(VKWS_REDIS_OUT >= VKWS_MAX_OUT + VKWS_REDIS_ENVELOPE,
    "the link's output holds one largest request whole");
_Static_assert(VKWS_REDIS_IN >= VKWS_MAX_OUT + VKWS_REDIS_ENVELOPE,
    "the link's input holds one largest bus message whole");
/* Requests whose replies are awaited, each with what to do with its
 * reply (an ack to send, a join to finish): enough for a thousand
 * clients joining in one burst (a router's 64 in the small profile).
 * Full: -7. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_REDIS_PENDING 256
#else
#define VKWS_REDIS_PENDING 2048
#endif
/* Bytes of their request ids and room names, freed as replies come:
 * 32 a request on average. Full: -7. */
#define VKWS_REDIS_PENDING_BYTES (32 * VKWS_REDIS_PENDING)
/* Leaves waiting for room in the link's output (bytes; about 60 a
 * leave): a node closing every connection at once. Full: the node
 * registers itself with Redis again. */
#define VKWS_LEAVE_BACKLOG (64 * VKWS_MAX_CONNS)
/* Members a cluster user_list names; the rest are counted in "more". */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_CLUSTER_LIST_MAX 64
#else
#define VKWS_CLUSTER_LIST_MAX 256
#endif
/* Bytes of member entries (userId and userInfo JSON) a join's reply
 * carries; the rest are counted in "more", so that the reply fits the
 * link's input whole. */
#define VKWS_CLUSTER_LIST_BYTES 32768
/* Rooms a cluster listRooms names (more: -5 "reply too large", as a
 * reply larger than VKWS_API_OUT is): one parsed value each. */
#define VKWS_CLUSTER_ROOMS_MAX (VKWS_HISTORY + VKWS_CLUSTER_LIST_MAX)
/* Values of one parsed Redis reply: a join's history and members. */
#define VKWS_REDIS_VALUES (VKWS_HISTORY + VKWS_CLUSTER_LIST_MAX + 16)
_Static_assert(VKWS_CLUSTER_ROOMS_MAX + 2 <= VKWS_REDIS_VALUES &&
    VKWS_CLUSTER_ROOMS_MAX >= VKWS_MAX_ROOMS,
    "a listRooms reply parses whole and names at least one node's rooms");
/* Server API calls waiting for other nodes' answers at once (each holds
 * a reply buffer of VKWS_API_OUT bytes); more answer -7. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_CLUSTER_HELD 1
#else
#define VKWS_CLUSTER_HELD 4
#endif
/* How long such a call waits for the nodes (ms): then it is answered
 * with what came. */
#define VKWS_CLUSTER_WAIT_MS 3000
/* Joins whose reply was read before their marker came on the bus
 * (cluster.c, deaf[]): the new members wait for it, deaf to the bus.
 * The marker trails its reply by a loop pass or two; past this many,
 * a join goes without the wait, and a chat that ran before it may reach
 * its member twice. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_CLUSTER_DEAF 16
#else
#define VKWS_CLUSTER_DEAF 64
#endif
/* Seconds before a node that stops heart-beating leaves every listing. */
#define VKWS_NODE_TTL 10
/* pollfd entries a layer may add (hooks->poll_fds): the two links. */
#define VKWS_EXTRA_FDS 2

/* ---- Run-time configuration ---------------------------------------- */

#define VKWS_ADDR_MAX 64	/* "ADDR:PORT" of a listener */
#define VKWS_PATH_MAX 256	/* a file or directory path */
#define VKWS_API_KEY_MAX 128	/* bytes of the API key */
/* --config: the largest config file (bytes), read whole into a static
 * buffer at start and on SIGHUP, and the longest line in it (bytes): a
 * name, a quoted path or secret of VKWS_PATH_MAX, and a comment. */
#define VKWS_CONFIG_MAX 16384
#define VKWS_CONFIG_LINE_MAX 1024
/* The version vkws --version prints; the Debian and OpenWrt packages
 * take theirs from this line (Makefile). */
#define VKWS_VERSION "0.9.0"

struct vkws_config {
	char listen[VKWS_ADDR_MAX];	/* empty: no plain listener */
	char tls_listen[VKWS_ADDR_MAX];
	char cert[VKWS_PATH_MAX];
	char key[VKWS_PATH_MAX];
	char secret_file[VKWS_PATH_MAX];
	char data_dir[VKWS_PATH_MAX];
	char redis[VKWS_PATH_MAX];	/* --redis HOST:PORT or unix:PATH */
	char redis_user[VKWS_REDIS_USER_MAX + 1];	/* --redis-user */
	char redis_pass_file[VKWS_PATH_MAX];	/* --redis-password-file */
	char redis_pass[VKWS_REDIS_PASS_MAX];	/* read from it at start */
	size_t redis_pass_len;
	char cluster[VKWS_CLUSTER_NAME_MAX + 1];	/* --cluster NAME */
	char node[VKWS_NODE_ID_MAX + 1];	/* --node ID, empty: random */
	unsigned node_ttl;	/* --node-ttl, seconds */
	uint8_t secret[VKWS_SECRET_MAX];
	size_t secret_len;
	char api_key_file[VKWS_PATH_MAX];	/* re-read on SIGHUP */
	char api_key[VKWS_API_KEY_MAX];
	size_t api_key_len;
	char origins[VKWS_MAX_ORIGINS][VKWS_ORIGIN_MAX];
	size_t norigins;
	char default_room[VKWS_ROOM_NAME_MAX + 1];
	int echo;		/* serve /echo */
	int api_remote;		/* /api answers peers off loopback */
	int no_auto_rooms;	/* join does not create rooms */
	unsigned max_conns;	/* WebSocket connections, <= VKWS_MAX_CONNS */
	unsigned pool_chunks;	/* chunks used, <= VKWS_POOL_CHUNKS */
	unsigned sndbuf;	/* SO_SNDBUF of connections, 0: kernel's */
	unsigned max_pending;	/* unproven connections (PROTOCOL.md 8) */
	unsigned max_per_ip;	/* connections per address, 0: off */
	unsigned http_max_requests;	/* requests per HTTP connection */
	unsigned reconnect_rate;	/* upgrades/s per address or user */
	unsigned reconnect_burst;
	unsigned history;	/* messages replayed, <= VKWS_HISTORY */
	unsigned rate;		/* messages per second per connection */
	unsigned rate_burst;
	unsigned rate_grace;	/* seconds over the rate before 1008 */
	unsigned handshake_timeout;	/* seconds, each as its flag says */
	unsigned auth_timeout;
	unsigned ping_interval;
	unsigned idle_timeout;
	unsigned close_timeout;
	unsigned active_window;
	int fsync_mode;		/* VKWS_FSYNC_*, --fsync */
	unsigned log_max;	/* --log-max (bytes), 0: VKWS_LOG_MAX */
};

/* --fsync: when records of the log reach the disk (store.c). batch is 0
 * so that a zeroed config means the default. */
enum {
	VKWS_FSYNC_BATCH = 0,	/* one fdatasync per loop pass, before acks */
	VKWS_FSYNC_ALWAYS,	/* one fdatasync per record */
	VKWS_FSYNC_NEVER	/* the kernel decides: a power cut loses data */
};

/* ---- Storage (store.c) ---------------------------------------------- */

/* Log size (bytes) past which it is compacted (--log-max). */
#define VKWS_LOG_MAX (1024 * 1024)
/* Largest --log-max (bytes): offsets in the log stay far from 32 bits. */
#define VKWS_LOG_MAX_LIMIT (1024 * 1024 * 1024)
/* Bytes of a record header: length (4), type (1), CRC-32 (4). */
#define VKWS_REC_HEAD 9
/* Largest record payload (bytes): a chat record is the room name with its
 * length byte, the room's life, the seq, and a chat frame, which fits the
 * largest frame the server sends. */
#define VKWS_REC_MAX (1 + VKWS_ROOM_NAME_MAX + 8 + 8 + VKWS_MAX_OUT)
/* Compaction writes through a buffer of this size (bytes), so the new
 * file is written in few large writes, not one per record. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_STORE_WBUF 4096
#else
#define VKWS_STORE_WBUF 16384
#endif
/* Storage failures are logged at most once per this many ms. */
#define VKWS_STORE_LOG_EVERY 60000
/* A failed log is reopened at most once per this many ms. */
#define VKWS_STORE_RETRY 1000
/* Bytes of a close reason disconnect/disconnectAll accept (after JSON
 * unescaping); the close frame carries the first 123 of them, cut at a
 * UTF-8 character boundary (PROTOCOL.md 7). */
#define VKWS_REASON_IN_MAX 512
/* --fsync batch: chat acks wait for the pass's sync, and the chat frame
 * with them, in a table of this many chats and a buffer of this many
 * bytes (one largest frame and its id at least); a chat that would not
 * fit makes the ones before it sync and go out first. */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_PENDING_CHATS 64	/* one a connection */
#else
#define VKWS_PENDING_CHATS 256
#endif
#ifdef VKWS_PROFILE_SMALL
#define VKWS_PENDING_BYTES (VKWS_MAX_OUT + 1024)	/* one largest */
#else
#define VKWS_PENDING_BYTES (2 * VKWS_MAX_OUT)
#endif

/* Fill c with the defaults of PROTOCOL.md. */
void vkws_config_default(struct vkws_config *c);

/*
 * Open the listeners of c, print "listening on ..." for each and serve
 * until SIGTERM or SIGINT. c must outlive the call. Returns the process
 * exit status: 0 after a clean shutdown, 1 if a listener could not open.
 */
int vkws_serve(struct vkws_config *c);

/* Print the static memory budget of the compiled constants to fd. */
void vkws_budget(int fd);

/* Write a log line (a printf format) to stderr, with a time stamp. */
void vkws_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));


/* ---- The vk.websocket C API ---------------------------------------- */
/*
 * These functions mirror vk.websocket.* one to one. The chat protocol
 * (api.c) and the server API (POST /api) are written on top of them.
 * They may be called from the loop only (vkws is single-threaded), e.g.
 * from an embedding program's hook; none blocks or does I/O: frames are
 * queued and written by the loop.
 *
 * Strings are (pointer, length), never NUL-terminated. Client ids are the
 * strings vkws hands out (VKWS_CLIENT_ID_MAX bytes at most). JSON data
 * arguments must be valid JSON text; they are sent as given.
 *
 * Returns: 0 (or a count) on success, else one of the codes below, the
 * error codes of PROTOCOL.md section 5.
 */
enum {
	VKWS_OK = 0,
	VKWS_EUNKNOWN = -1,	/* unknown operation, auth failed */
	VKWS_EINVAL = -2,	/* invalid argument */
	VKWS_ENOTFOUND = -3,	/* no such room, client or user */
	VKWS_EPERM = -4,	/* not allowed */
	VKWS_ELIMIT = -5,	/* room full, too many rooms, too large */
	VKWS_ERATE = -6,	/* rate limited */
	VKWS_ESTORE = -7	/* storage failed */
};

/* The "msg" vkws sends with an error code; -1 is the seed's text. */
const char *vkws_strerror(int code);

/*
 * Parse "ADDR:PORT" (IPv4) or "[ADDR]:PORT" (IPv6) into *ss and *sl.
 * Returns 0, or -1 if it is not one of those.
 */
struct sockaddr_storage;
int vkws_addr_parse(const char *spec, struct sockaddr_storage *ss,
    unsigned *sl);

/* Largest chat or private message content (bytes). */
#define VKWS_MAX_CHAT 4096
/* History kept per room (bytes of stored chat frames). */
#ifdef VKWS_PROFILE_SMALL
#define VKWS_HISTORY_BYTES 8192
#else
#define VKWS_HISTORY_BYTES 32768
#endif

/* A room as getRoomInfo reports it. */
struct vkws_room_info {
	const char *name;	/* valid until the next call into vkws */
	size_t name_len;
	unsigned clients;	/* members now */
	unsigned max_clients;	/* 0: the server's limit */
	int persistent;
	int64_t created_at;	/* ms since the epoch */
};

/* A connection as getConnectionInfo reports it. Pointers are valid until
 * the next call into vkws. user_id is NULL before authentication. */
struct vkws_client {
	char client_id[VKWS_CLIENT_ID_MAX];
	size_t client_id_len;
	const char *user_id;
	size_t user_id_len;
	const char *user_info;	/* JSON object text */
	size_t user_info_len;
	const char *remote_addr;	/* NUL-terminated */
	unsigned nrooms;
	const char *rooms[VKWS_ROOMS_PER_CONN];
	size_t room_lens[VKWS_ROOMS_PER_CONN];
	int64_t connected_at, last_active_at;	/* ms since the epoch */
	uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
	size_t queued_bytes;
	int tls;
	const char *cipher;	/* TLS cipher suite name, or NULL */
};

/* Called once per client by the listing functions; arg is passed
 * through. The struct is valid only during the call. */
typedef void vkws_client_fn(const struct vkws_client *c, void *arg);
typedef void vkws_room_fn(const struct vkws_room_info *r, void *arg);

/* createRoom: create room, or update an existing one. max_clients < 0
 * keeps the current value (0 for a new room); over the compiled limit is
 * VKWS_EINVAL. Fills *out if not NULL. */
int vkws_create_room(const char *room, size_t n, long max_clients,
    int persistent, struct vkws_room_info *out);
/* getRoomInfo: VKWS_ENOTFOUND if no such room. */
int vkws_get_room_info(const char *room, size_t n,
    struct vkws_room_info *out);
/* getRoomClients: fn for each member; returns the count. */
int vkws_get_room_clients(const char *room, size_t n, vkws_client_fn *fn,
    void *arg);
/* deleteRoom: members get room_deleted; history dropped. The default room
 * is VKWS_EPERM. */
int vkws_delete_room(const char *room, size_t n);
/* joinRoom / leaveRoom: as a client's join and leave requests, with the
 * same notifications. join: VKWS_ENOTFOUND (no room and none may be
 * created), VKWS_ELIMIT (room full or client in too many rooms); leave:
 * VKWS_ENOTFOUND (no room), VKWS_EPERM (not a member). */
int vkws_join_room(const char *cid, size_t cn, const char *room, size_t n);
int vkws_leave_room(const char *cid, size_t cn, const char *room, size_t n);
/* leaveAllRooms: returns the number of rooms left. */
int vkws_leave_all_rooms(const char *cid, size_t cn);
/* Broadcasts of the JSON text data[0..dn) as one text frame; each returns
 * the number of authenticated clients it was queued for. A client whose
 * queue cannot take it is closed with 1013 and not counted. */
int vkws_broadcast_to_all(const char *data, size_t dn);
int vkws_broadcast_to_room(const char *room, size_t n, const char *data,
    size_t dn);
/* rooms: nrooms (pointer, length) names; a client in several gets one
 * copy. VKWS_ENOTFOUND if none of the rooms exists. */
int vkws_broadcast_to_rooms(const char *const *rooms, const size_t *lens,
    size_t nrooms, const char *data, size_t dn);
int vkws_send_to_client(const char *cid, size_t cn, const char *data,
    size_t dn);
int vkws_send_to_user(const char *uid, size_t un, const char *data,
    size_t dn);
/* Connection listings; each returns the count. */
int vkws_get_all_connections(vkws_client_fn *fn, void *arg);
int vkws_get_active_connections(vkws_client_fn *fn, void *arg);
int vkws_get_connection_info(const char *cid, size_t cn,
    struct vkws_client *out);
int vkws_list_rooms(vkws_room_fn *fn, void *arg);
/* disconnect: code 1000 or 3000-4999 (else VKWS_EINVAL), reason ASCII up
 * to 123 bytes. disconnectAll returns the number closed. */
int vkws_disconnect(const char *cid, size_t cn, int code,
    const char *reason, size_t rn);
int vkws_disconnect_all(int code, const char *reason, size_t rn);
/* setClientData replaces userInfo (a JSON object, at most
 * VKWS_USERINFO_MAX bytes); getClientData gives a pointer to it, valid
 * until the next call into vkws, and returns its length. */
int vkws_set_client_data(const char *cid, size_t cn, const char *json,
    size_t jn);
int vkws_get_client_data(const char *cid, size_t cn, const char **json);

_Static_assert(VKWS_HISTORY_BYTES + VKWS_CLUSTER_LIST_BYTES +
    16 * VKWS_REDIS_VALUES + VKWS_REDIS_ENVELOPE <= VKWS_REDIS_IN,
    "a join's reply (history, members, RESP headers) fits the input");
_Static_assert(VKWS_HISTORY_BYTES + 1024 <= VKWS_API_OUT,
    "getRoomHistory of a whole room fits one /api reply");
_Static_assert(VKWS_HISTORY_BYTES + 1024 <= VKWS_MAX_OUT,
    "a room's whole history fits one reply");

#endif
