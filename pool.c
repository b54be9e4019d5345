/*
 * pool.c: the shared memory of the core. One static array of fixed-size
 * chunks with a free list and a reference count per chunk, and one static
 * array of queue segments (a chunk index, an offset, a length). A send
 * queue is a list of segments; a frame sent to many is written once into
 * chunks and every queue that carries it points at the same bytes, so a
 * broadcast costs its size once, not once per reader. Receive space for
 * partial frames comes from a pool of whole receive buffers, taken while
 * a frame is split across reads and given back once it is whole.
 *
 * No I/O, no allocation, no knowledge of sockets: the loop (vkws.c) moves
 * the bytes; this file only hands out and takes back memory.
 */
#include <string.h>

#include "vkws.h"
#include "core.h"

static uint8_t chunk_mem[VKWS_POOL_CHUNKS][VKWS_CHUNK];
static uint16_t chunk_ref[VKWS_POOL_CHUNKS];	/* 0: on the free list */
static uint16_t chunk_used[VKWS_POOL_CHUNKS];	/* bytes written */
static uint16_t chunk_next[VKWS_POOL_CHUNKS];	/* free list link */
static uint16_t chunk_free_head = VKWS_NONE16;
static size_t chunk_nfree;
static size_t chunk_low = VKWS_POOL_CHUNKS;	/* fewest free seen */
static size_t pool_n = VKWS_POOL_CHUNKS;	/* chunks in use (flag) */

struct seg {
	uint16_t chunk;
	uint16_t off;
	uint16_t len;		/* low 15 bits; SEG_START: a frame begins */
	uint16_t next;
};
#define SEG_START 0x8000u
#define SEG_LEN 0x7FFFu
_Static_assert(VKWS_CHUNK <= SEG_LEN, "a segment length fits 15 bits");
static struct seg segs[VKWS_POOL_SEGS];
static uint16_t seg_free_head = VKWS_NONE16;
static size_t seg_nfree;

static uint8_t rx_mem[VKWS_RX_BUFS][VKWS_RX_BUF];
static uint16_t rx_next[VKWS_RX_BUFS];
static uint16_t rx_free_head = VKWS_NONE16;
static size_t rx_nfree;

/* The chunks shared frames and small texts (userInfo) are packed into,
 * each held by the pool itself. Texts live as long as a connection and
 * frames only until written, so they do not share chunks: a text would
 * pin the chunk of every frame packed beside it. */
static uint16_t shared_cur = VKWS_NONE16;
static uint16_t blob_cur = VKWS_NONE16;
/* Private bytes (replies to one connection) are packed apart from the
 * shared frames, so that frames shared one after another stay contiguous
 * and a reader's queue covers a run of them with one segment. */
static uint16_t priv_cur = VKWS_NONE16;

void
vkws_pool_init(size_t n)
{
	size_t i;

	pool_n = n < VKWS_POOL_MIN ? VKWS_POOL_MIN : n > VKWS_POOL_CHUNKS ?
	    VKWS_POOL_CHUNKS : n;
	/* Built back to front so the lowest indexes are handed out first
	 * and the pages of the rest stay untouched until needed. */
	chunk_free_head = VKWS_NONE16;
	for (i = pool_n; i-- > 0;) {
		chunk_next[i] = chunk_free_head;
		chunk_free_head = (uint16_t)i;
	}
	chunk_nfree = chunk_low = pool_n;
	seg_free_head = VKWS_NONE16;
	for (i = VKWS_POOL_SEGS; i-- > 0;) {
		segs[i].next = seg_free_head;
		seg_free_head = (uint16_t)i;
	}
	seg_nfree = VKWS_POOL_SEGS;
	rx_free_head = VKWS_NONE16;
	for (i = VKWS_RX_BUFS; i-- > 0;) {
		rx_next[i] = rx_free_head;
		rx_free_head = (uint16_t)i;
	}
	rx_nfree = VKWS_RX_BUFS;
	shared_cur = blob_cur = priv_cur = VKWS_NONE16;
}

/* ---- Chunks --------------------------------------------------------- */

uint16_t
vkws_chunk_get(void)
{
	uint16_t k = chunk_free_head;

	if (k == VKWS_NONE16)
		return k;
	chunk_free_head = chunk_next[k];
	chunk_nfree--;
	if (chunk_nfree < chunk_low)
		chunk_low = chunk_nfree;
	chunk_ref[k] = 1;
	chunk_used[k] = 0;
	return k;
}

void
vkws_chunk_put(uint16_t k)
{
	if (--chunk_ref[k] > 0)
		return;
	chunk_next[k] = chunk_free_head;
	chunk_free_head = k;
	chunk_nfree++;
}

uint8_t *
vkws_chunk_mem(uint16_t k)
{
	return chunk_mem[k];
}

size_t
vkws_pool_free(void)
{
	return chunk_nfree < seg_nfree / 4 ? chunk_nfree : seg_nfree / 4;
}

int
vkws_pool_low(void)
{
	return vkws_pool_free() < pool_n / VKWS_POOL_LOW_DIV;
}

size_t
vkws_pool_history_max(void)
{
	return pool_n / VKWS_HISTORY_SHARE;
}

void
vkws_pool_stats(struct vkws_pool_stats *s)
{
	s->chunks = pool_n;
	s->chunks_free = chunk_nfree;
	s->chunks_low = chunk_low;
	s->segs = VKWS_POOL_SEGS;
	s->segs_free = seg_nfree;
	s->rx = VKWS_RX_BUFS;
	s->rx_free = rx_nfree;
}

size_t
vkws_pool_static_size(void)
{
	return sizeof(chunk_mem) + sizeof(chunk_ref) + sizeof(chunk_used) +
	    sizeof(chunk_next) + sizeof(segs) + sizeof(rx_mem) +
	    sizeof(rx_next);
}

/* ---- Segments and queues -------------------------------------------- */

static uint16_t
seg_get(void)
{
	uint16_t s = seg_free_head;

	if (s != VKWS_NONE16) {
		seg_free_head = segs[s].next;
		seg_nfree--;
	}
	return s;
}

static void
seg_put(uint16_t s)
{
	vkws_chunk_put(segs[s].chunk);
	segs[s].next = seg_free_head;
	seg_free_head = s;
	seg_nfree++;
}

static void
q_link(struct vkws_q *q, uint16_t s)
{
	segs[s].next = VKWS_NONE16;
	if (q->tail == VKWS_NONE16)
		q->head = s;
	else
		segs[q->tail].next = s;
	q->tail = s;
}

/* Chunks and segments a copy of n bytes may need, whatever the tail. */
static size_t
need_for(size_t n)
{
	return (n + VKWS_CHUNK - 1) / VKWS_CHUNK + 1;
}

int
vkws_q_can_put(size_t n)
{
	size_t need = need_for(n);

	return chunk_nfree >= need && seg_nfree >= need;
}

/* The current packing chunk *cur with n free bytes at its end, or a new
 * one; VKWS_NONE16 if the pool is dry. */
static uint16_t
pack_room(uint16_t *cur, size_t n)
{
	uint16_t c = *cur;

	if (c == VKWS_NONE16 || (size_t)(VKWS_CHUNK - chunk_used[c]) < n) {
		if (c != VKWS_NONE16)
			vkws_chunk_put(c);
		*cur = c = vkws_chunk_get();
	}
	return c;
}

/*
 * Append p[0..n) to q: behind its tail segment when the tail ends where
 * its chunk's free space begins, else into the pool's packing chunk. start marks the first byte as the start of a
 * frame (or of raw HTTP bytes). Returns 0, or -1 with q unchanged in
 * its bytes if the pool ran dry (the caller checks vkws_q_can_put()).
 */
int
vkws_q_put(struct vkws_q *q, const void *p, size_t n, int start)
{
	const uint8_t *b = p;

	while (n > 0) {
		struct seg *t = q->tail != VKWS_NONE16 ? &segs[q->tail] : NULL;
		/* Whether the tail segment ends where its chunk's free space
		 * begins: then the bytes go right behind it. Bytes past
		 * chunk_used are nobody's, so any queue may write there,
		 * except in the chunk shared frames are being packed into:
		 * a reply written there (the sender's ack behind the chat
		 * it also receives) would split the next shared frame from
		 * the one before it, and every member's queue would then
		 * need a segment, a reference and an iovec per frame
		 * instead of one per run of frames (the fanout cost). */
		int open = t != NULL && t->chunk != shared_cur &&
		    t->off + (t->len & SEG_LEN) == chunk_used[t->chunk] &&
		    chunk_used[t->chunk] < VKWS_CHUNK;
		size_t room;

		/* Frames that follow each other in a chunk share a segment:
		 * segments end only where a frame ends or a chunk does, so
		 * the frame-start mark of the segment still says whether
		 * its first frame has begun to go out. */
		if (open) {
			uint16_t k = t->chunk;
			room = VKWS_CHUNK - chunk_used[k];
			if (room > n)
				room = n;
			memcpy(chunk_mem[k] + chunk_used[k], b, room);
			chunk_used[k] = (uint16_t)(chunk_used[k] + room);
			t->len = (uint16_t)(t->len + room);
		} else {
			uint16_t s, c;

			/* New bytes go behind the last ones packed, so the
			 * close frames of a thousand slow readers fill a few
			 * chunks, not a thousand. */
			if ((c = pack_room(&priv_cur, 1)) == VKWS_NONE16)
				return -1;
			if ((s = seg_get()) == VKWS_NONE16)
				return -1;
			chunk_ref[c]++;
			room = VKWS_CHUNK - chunk_used[c];
			if (room > n)
				room = n;
			memcpy(chunk_mem[c] + chunk_used[c], b, room);
			segs[s].chunk = c;
			segs[s].off = chunk_used[c];
			segs[s].len = (uint16_t)(room | (start ? SEG_START : 0));
			chunk_used[c] = (uint16_t)(chunk_used[c] + room);
			q_link(q, s);
		}
		q->len += (uint32_t)room;
		b += room;
		n -= room;
		start = 0;
	}
	return 0;
}

/* Point q at the bytes of the shared frame f: new segments, the same
 * chunks. */
int
vkws_q_attach(struct vkws_q *q, const struct vkws_q *f)
{
	uint16_t s, n;
	size_t count = 0;

	for (s = f->head; s != VKWS_NONE16; s = segs[s].next)
		count++;
	if (seg_nfree < count)
		return -1;
	for (s = f->head; s != VKWS_NONE16; s = segs[s].next) {
		struct seg *t = q->tail != VKWS_NONE16 ? &segs[q->tail] : NULL;
		size_t tl = t ? (size_t)(t->len & SEG_LEN) : 0;
		size_t sl = segs[s].len & SEG_LEN;

		/* The frame follows the tail's bytes in the same chunk (the
		 * frames shared one after another are packed): one segment
		 * covers both, and the tail's reference holds the chunk. */
		if (t != NULL && t->chunk == segs[s].chunk &&
		    t->off + tl == segs[s].off && tl + sl <= VKWS_CHUNK) {
			t->len = (uint16_t)(t->len + sl);
			continue;
		}
		n = seg_get();
		segs[n] = segs[s];
		chunk_ref[segs[n].chunk]++;
		q_link(q, n);
	}
	q->len += f->len;
	return 0;
}

int
vkws_pool_blob(const void *p, size_t n, uint16_t *k, uint16_t *off)
{
	uint16_t c;

	if (n > VKWS_CHUNK || (c = pack_room(&blob_cur, n)) == VKWS_NONE16)
		return -1;
	memcpy(chunk_mem[c] + chunk_used[c], p, n);
	*k = c;
	*off = chunk_used[c];
	chunk_used[c] = (uint16_t)(chunk_used[c] + n);
	chunk_ref[c]++;
	return 0;
}

/*
 * Write a frame to be shared into f (empty on entry): packed behind the
 * frames before it in the pool's current shared chunk, so that many
 * small notifications share one chunk. Returns 0, or -1 (f left empty)
 * if the pool cannot hold it.
 */
int
vkws_q_shared(struct vkws_q *f, const void *a, size_t an, const void *b,
    size_t bn)
{
	const void *part[2] = { a, b };
	const size_t plen[2] = { an, bn };
	size_t i;
	int start = 1;

	f->head = f->tail = VKWS_NONE16;
	f->len = 0;
	if (!vkws_q_can_put(an + bn))
		return -1;
	for (i = 0; i < 2; i++) {
		const uint8_t *p = part[i];
		size_t n = plen[i];

		while (n > 0) {
			uint16_t s, c;
			size_t room;

			if ((c = pack_room(&shared_cur, 1)) == VKWS_NONE16)
				goto fail;
			if ((s = seg_get()) == VKWS_NONE16)
				goto fail;
			room = VKWS_CHUNK - chunk_used[c];
			if (room > n)
				room = n;
			memcpy(chunk_mem[c] + chunk_used[c], p, room);
			chunk_ref[c]++;
			segs[s].chunk = c;
			segs[s].off = chunk_used[c];
			segs[s].len = (uint16_t)(room | (start ? SEG_START : 0));
			chunk_used[c] = (uint16_t)(chunk_used[c] + room);
			q_link(f, s);
			f->len += (uint32_t)room;
			p += room;
			n -= room;
			start = 0;
		}
	}
	return 0;
fail:
	vkws_q_free(f);
	return -1;
}

void
vkws_q_free(struct vkws_q *q)
{
	uint16_t s = q->head;

	while (s != VKWS_NONE16) {
		uint16_t n = segs[s].next;
		seg_put(s);
		s = n;
	}
	q->head = q->tail = VKWS_NONE16;
	q->len = 0;
}

/* Up to max iovecs over the first budget bytes of q; returns the count. */
int
vkws_q_iov(const struct vkws_q *q, struct iovec *iov, int max, size_t budget)
{
	uint16_t s;
	int n = 0;

	for (s = q->head; s != VKWS_NONE16 && n < max && budget > 0;
	    s = segs[s].next) {
		size_t l = segs[s].len & SEG_LEN;

		if (l > budget)
			l = budget;
		iov[n].iov_base = chunk_mem[segs[s].chunk] + segs[s].off;
		iov[n].iov_len = l;
		budget -= l;
		n++;
	}
	return n;
}

/* n bytes of q were written: drop them from its head. */
void
vkws_q_consume(struct vkws_q *q, size_t n)
{
	while (n > 0 && q->head != VKWS_NONE16) {
		struct seg *h = &segs[q->head];
		size_t l = h->len & SEG_LEN;

		if (n < l) {
			/* The frame has begun: it must go out whole. */
			h->off = (uint16_t)(h->off + n);
			h->len = (uint16_t)(l - n);
			q->len -= (uint32_t)n;
			return;
		}
		q->len -= (uint32_t)l;
		n -= l;
		{
			uint16_t s = q->head;
			q->head = h->next;
			if (q->head == VKWS_NONE16)
				q->tail = VKWS_NONE16;
			seg_put(s);
		}
	}
}

/*
 * Drop the frames of q that have not begun to go out: everything after
 * the frame whose bytes are partly written. Used when a slow reader is
 * closed, so its memory goes back at once and its close frame follows
 * a whole frame.
 */
void
vkws_q_drop_unsent(struct vkws_q *q)
{
	uint16_t s = q->head, prev;

	if (s == VKWS_NONE16)
		return;
	if (segs[s].len & SEG_START) {
		/* Nothing of the head frame went out yet: drop it all. */
		vkws_q_free(q);
		return;
	}
	/* The head frame is half written: keep the rest of it. */
	do {
		prev = s;
		s = segs[s].next;
	} while (s != VKWS_NONE16 && !(segs[s].len & SEG_START));
	segs[prev].next = VKWS_NONE16;
	q->tail = prev;
	while (s != VKWS_NONE16) {
		uint16_t n = segs[s].next;
		q->len -= segs[s].len & SEG_LEN;
		seg_put(s);
		s = n;
	}
}

/* ---- Receive buffers ------------------------------------------------ */

uint16_t
vkws_rx_get(void)
{
	uint16_t k = rx_free_head;

	if (k != VKWS_NONE16) {
		rx_free_head = rx_next[k];
		rx_nfree--;
	}
	return k;
}

void
vkws_rx_put(uint16_t k)
{
	rx_next[k] = rx_free_head;
	rx_free_head = k;
	rx_nfree++;
}

size_t
vkws_rx_free_count(void)
{
	return rx_nfree;
}

uint8_t *
vkws_rx_mem(uint16_t k)
{
	return rx_mem[k];
}
