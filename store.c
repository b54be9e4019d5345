/*
 * store.c: chat history and persistent rooms on disk, in one append-only
 * log under --data-dir (format in store.h). Without --data-dir nothing is
 * written and history lives in memory only (PROTOCOL.md 6).
 *
 * The log only ever grows by whole records written with write(2); it is
 * replaced, never rewritten in place, by compaction: the state kept in
 * memory is written to a new file, made durable, and renamed over the
 * old one. So at every instant the file named "log" holds either the old
 * state or the new one, whole, plus a possibly torn last record, which
 * replay cuts off. A write that fails marks the log broken: requests that
 * need it get -7 until a compaction from memory succeeds again, which is
 * also how the server comes back after a full disk or a lost directory.
 * Replay trusts no record for its checksum alone: what records say is
 * checked (store.h), and every life of a room is told apart.
 *
 * No allocation, no stdio: one static read buffer for replay, one static
 * write buffer for compaction, open/pread/writev/fdatasync/rename.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core.h"
#include "store.h"

/* ---- The record codec ------------------------------------------------ */

static uint32_t crc_table[256];
/* The payload of a header record starts with these bytes. */
static const uint8_t magic[4] = { 'V', 'K', 'W', 'L' };

uint32_t
vkws_crc32(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	if (crc_table[1] == 0) {
		uint32_t k;
		for (k = 0; k < 256; k++) {
			uint32_t c = k;
			for (i = 0; i < 8; i++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			crc_table[k] = c;
		}
	}
	crc = ~crc;
	for (i = 0; i < n; i++)
		crc = crc_table[(crc ^ b[i]) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

size_t
vkws_rec_encode(uint8_t *head, const struct vkws_rec *r)
{
	size_t n = VKWS_REC_HEAD, plen;
	int type = r->type;
	uint32_t crc;

	if (type == VKWS_REC_HEADER) {
		memcpy(head + n, magic, sizeof(magic));
		put32(head + n + 4, r->version);
		n += 8;
	} else {
		if (r->room_len == 0 || r->room_len > VKWS_ROOM_NAME_MAX)
			return 0;
		head[n++] = (uint8_t)r->room_len;
		memcpy(head + n, r->room, r->room_len);
		n += r->room_len;
	}
	switch (type) {
	case VKWS_REC_HEADER:
	case VKWS_REC_DELETED:
		break;
	case VKWS_REC_ROOM:
		put32(head + n, r->max_clients);
		head[n + 4] = r->persistent ? 1 : 0;
		put64(head + n + 5, r->seq);
		n += 13;
		if (!r->legacy) {
			type = VKWS_REC_ROOM2;
			put64(head + n, r->life);
			put64(head + n + 8, (uint64_t)r->created_at);
			n += 16;
		}
		break;
	case VKWS_REC_CHAT:
		if (!r->legacy) {
			type = VKWS_REC_CHAT2;
			put64(head + n, r->life);
			n += 8;
		}
		put64(head + n, r->seq);
		n += 8;
		break;
	default:
		return 0;
	}
	plen = n - VKWS_REC_HEAD;
	if (r->type == VKWS_REC_CHAT) {
		if (r->frame_len > VKWS_REC_MAX - plen)
			return 0;
		plen += r->frame_len;
	}
	put32(head, (uint32_t)plen);
	head[4] = (uint8_t)type;
	crc = vkws_crc32(0, head, 5);
	crc = vkws_crc32(crc, head + VKWS_REC_HEAD, n - VKWS_REC_HEAD);
	if (r->type == VKWS_REC_CHAT)
		crc = vkws_crc32(crc, r->frame, r->frame_len);
	put32(head + 5, crc);
	return n;
}

/* The room name at the start of a payload; its bytes, or -1. */
static int
dec_name(const uint8_t *p, size_t n, struct vkws_rec *r)
{
	if (n < 1 || p[0] == 0 || p[0] > VKWS_ROOM_NAME_MAX ||
	    (size_t)p[0] + 1 > n)
		return -1;
	r->room = (const char *)p + 1;
	r->room_len = p[0];
	return 1 + p[0];
}

int
vkws_rec_decode(const uint8_t *p, size_t n, struct vkws_rec *r)
{
	uint32_t len;
	const uint8_t *pl;
	int k;

	if (n < 5)
		return 0;
	/* Length and type first: a torn or corrupt header must not make
	 * the caller wait for bytes that will never come. */
	len = get32(p);
	if (len == 0 || len > VKWS_REC_MAX)
		return VKWS_REC_EBADLEN;
	if (p[4] < VKWS_REC_HEADER || p[4] > VKWS_REC_CHAT2)
		return VKWS_REC_EBADTYPE;
	if (n < VKWS_REC_HEAD + (size_t)len)
		return 0;
	if (vkws_crc32(vkws_crc32(0, p, 5), p + VKWS_REC_HEAD, len) !=
	    get32(p + 5))
		return VKWS_REC_ECRC;
	memset(r, 0, sizeof(*r));
	r->type = p[4];
	pl = p + VKWS_REC_HEAD;
	switch (r->type) {
	case VKWS_REC_HEADER:
		if (len != 8 || memcmp(pl, magic, sizeof(magic)) != 0)
			return VKWS_REC_EPAYLOAD;
		r->version = get32(pl + 4);
		if (r->version < VKWS_LOG_VERSION_MIN ||
		    r->version > VKWS_LOG_VERSION)
			return VKWS_REC_EPAYLOAD;
		break;
	case VKWS_REC_ROOM:
	case VKWS_REC_ROOM2:
		r->legacy = p[4] == VKWS_REC_ROOM;
		if ((k = dec_name(pl, len, r)) < 0 ||
		    (size_t)k + (r->legacy ? 13 : 29) != len || pl[k + 4] > 1)
			return VKWS_REC_EPAYLOAD;
		r->type = VKWS_REC_ROOM;
		r->max_clients = get32(pl + k);
		r->persistent = pl[k + 4];
		r->seq = get64(pl + k + 5);
		if (!r->legacy) {
			r->life = get64(pl + k + 13);
			r->created_at = (int64_t)get64(pl + k + 21);
		}
		break;
	case VKWS_REC_CHAT:
	case VKWS_REC_CHAT2:
		r->legacy = p[4] == VKWS_REC_CHAT;
		if ((k = dec_name(pl, len, r)) < 0 ||
		    (size_t)k + (r->legacy ? 8 : 16) > len)
			return VKWS_REC_EPAYLOAD;
		r->type = VKWS_REC_CHAT;
		if (!r->legacy) {
			r->life = get64(pl + k);
			k += 8;
		}
		r->seq = get64(pl + k);
		r->frame = (const char *)pl + k + 8;
		r->frame_len = len - (size_t)k - 8;
		break;
	default:	/* VKWS_REC_DELETED */
		if ((k = dec_name(pl, len, r)) < 0 || (size_t)k != len)
			return VKWS_REC_EPAYLOAD;
		break;
	}
	return (int)(VKWS_REC_HEAD + len);
}

/* ---- Reading a log ---------------------------------------------------- */

/*
 * A window on the file being scanned: bytes [win_off, win_off + win_len)
 * of it. It holds one largest record whole, plus some slack so that
 * stepping through small records refills it seldom.
 */
static uint8_t rbuf[VKWS_REC_HEAD + VKWS_REC_MAX + 16384];
static uint64_t win_off;
static size_t win_len;

/*
 * Make the file's bytes from off on readable at rbuf + (off - win_off),
 * as many as fit or as the file has (size). Returns how many that is,
 * or -1 with errno.
 */
static ssize_t
window(int fd, uint64_t off, uint64_t size)
{
	if (off < win_off || off > win_off + win_len) {
		win_off = off;
		win_len = 0;
	}
	if (off + (VKWS_REC_HEAD + VKWS_REC_MAX) > win_off + win_len &&
	    win_off + win_len < size) {
		size_t keep = (size_t)(win_off + win_len - off);
		memmove(rbuf, rbuf + (off - win_off), keep);
		win_off = off;
		win_len = keep;
		while (win_len < sizeof(rbuf) && win_off + win_len < size) {
			ssize_t r = pread(fd, rbuf + win_len, sizeof(rbuf) - win_len,
			    (off_t)(win_off + win_len));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -1;
			if (r == 0)
				break;	/* shrank under us: use what came */
			win_len += (size_t)r;
		}
	}
	return (ssize_t)(win_off + win_len - off);
}

int
vkws_log_scan(int fd, vkws_rec_fn *fn, void *arg, struct vkws_scan *out)
{
	struct stat st;
	struct vkws_rec rec;
	uint64_t off = 0, budget;
	ssize_t avail;

	memset(out, 0, sizeof(*out));
	win_off = 0;
	win_len = 0;
	if (fstat(fd, &st) < 0)
		return -1;
	out->size = (uint64_t)st.st_size;
	while (off < out->size) {
		int r;

		if ((avail = window(fd, off, out->size)) < 0)
			return -1;
		r = vkws_rec_decode(rbuf + (off - win_off), (size_t)avail,
		    &rec);
		if (r == 0)
			r = VKWS_REC_ETORN;
		else if (r > 0 && off == 0 && rec.type != VKWS_REC_HEADER)
			r = VKWS_REC_ENOHEAD;
		if (r < 0) {
			out->err = r;
			break;
		}
		out->good = off;	/* where the record fn gets starts */
		fn(&rec, arg);
		out->records++;
		off += (uint64_t)r;
	}
	out->good = off;
	if (out->err == 0)
		return 0;
	/* Is there a good record past the bad one? Then the bad one is
	 * damage in the middle, not a write cut short by a crash. A random
	 * match needs a valid length, type and CRC-32 at once. The cheap
	 * tests come first, and the checksums are held to a budget linear
	 * in the bytes scanned: a tail crafted to pass the cheap tests at
	 * many offsets ends the scan as damage instead of costing the
	 * square of its length. */
	budget = VKWS_SCAN_CRC_FACTOR * (out->size - out->good) +
	    VKWS_REC_HEAD + VKWS_REC_MAX;
	for (off = out->good + 1; off + VKWS_REC_HEAD < out->size; off++) {
		const uint8_t *p;
		uint32_t len;

		if ((avail = window(fd, off, out->size)) < 0)
			return -1;
		p = rbuf + (off - win_off);
		len = get32(p);
		if (len == 0 || len > VKWS_REC_MAX || p[4] < VKWS_REC_HEADER ||
		    p[4] > VKWS_REC_CHAT2 ||
		    off + VKWS_REC_HEAD + len > out->size)
			continue;
		if (out->crc_bytes + 5 + len > budget) {
			out->gave_up = 1;
			break;
		}
		out->crc_bytes += 5 + (uint64_t)len;
		if (vkws_rec_decode(p, (size_t)avail, &rec) > 0) {
			out->next_good = off;
			break;
		}
	}
	return 0;
}

/* ---- State ------------------------------------------------------------ */

static struct vkws_config *cfg;
static int on;			/* --data-dir given */
static int log_fd = -1;		/* the log, open for append */
static int broken;		/* a write failed: refuse until compacted */
static int dirty;		/* records written in this pass, not synced */
static uint64_t log_size;	/* bytes of whole records in the log */
static uint64_t compact_at;	/* compact when log_size reaches this */
static int64_t retry_at;	/* next compaction attempt (monotonic ms) */
static int64_t complained_at;	/* last failure log line (monotonic ms) */
static uint64_t quiet_failures;	/* failures since that line */
static char path_dir[VKWS_PATH_MAX];
static char path_log[VKWS_PATH_MAX + 8];
static char path_tmp[VKWS_PATH_MAX + 8];
static char path_aside[VKWS_PATH_MAX + 48];

static struct vkws_store_stats stats;

#ifdef VKWS_TEST_HOOKS
/* Test builds only: VKWS_CRASH_AT=step ends the process at that step of
 * compaction, as a power cut would, to show that no step loses data. */
static void
crash_point(const char *step)
{
	const char *e = getenv("VKWS_CRASH_AT");

	if (e != NULL && strcmp(e, step) == 0) {
		static const char m[] = "store: test crash\n";
		(void)!write(STDERR_FILENO, m, sizeof(m) - 1);
		_exit(99);
	}
}

/* Test builds only: VKWS_SYNC_FAIL=1 makes the log's fdatasync (of
 * --fsync batch and always) fail with EIO, as a disk that loses a write
 * would. */
static int
data_sync(int fd)
{
	const char *e = getenv("VKWS_SYNC_FAIL");

	if (e != NULL && strcmp(e, "1") == 0) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}
#else
#define crash_point(step) ((void)0)
#define data_sync(fd) fdatasync(fd)
#endif

void
vkws_store_get_stats(struct vkws_store_stats *out)
{
	*out = stats;
	out->log_bytes = log_size;
	out->broken = broken;
}

size_t
vkws_store_static_size(void)
{
	return sizeof(rbuf) + sizeof(crc_table) + VKWS_STORE_WBUF;
}

/* iov_base is not const; the frame is only read. */
static void *
unconst(const void *p)
{
	return (void *)(uintptr_t)p;
}

/*
 * Note a failure: the log is broken until a compaction succeeds. One log
 * line per VKWS_STORE_LOG_EVERY at most, so a full disk cannot flood the
 * log (which may well be on that disk).
 */
static void
fail(const char *what, int err)
{
	int64_t now = vkws_now_ms();

	stats.failures++;
	if (!broken)
		retry_at = now + VKWS_STORE_RETRY;
	broken = 1;
	if (complained_at != 0 && now - complained_at < VKWS_STORE_LOG_EVERY) {
		quiet_failures++;
		return;
	}
	vkws_log("store: %s: %s; chat is refused with -7 until the log can "
	    "be written again (%llu failures since the last such line)",
	    what, strerror(err), (unsigned long long)quiet_failures);
	complained_at = now;
	quiet_failures = 0;
}

/* Write iov[0..n) whole; 0, or -1 with errno. */
static int
write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		/* A short write: step over what went out and go on. */
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int
dir_sync(void)
{
	int fd = open(path_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* ---- Appending -------------------------------------------------------- */

/* Append one record to the log: 0, or -1 (the log is then broken). */
static int
append(const struct vkws_rec *r)
{
	uint8_t head[VKWS_REC_FIXED];
	struct iovec iov[2];
	struct stat sb;
	size_t hn = vkws_rec_encode(head, r), total;
	int e;

	if (!on)
		return 0;
	if (broken || hn == 0)
		return -1;
	/* The first record of a pass checks that the file still has a
	 * name: writes to a log whose directory was removed would succeed
	 * and reach nothing. */
	if (!dirty && (fstat(log_fd, &sb) < 0 || sb.st_nlink == 0)) {
		fail("log file is gone", ENOENT);
		return -1;
	}
	iov[0].iov_base = head;
	iov[0].iov_len = hn;
	iov[1].iov_base = unconst(r->frame);
	iov[1].iov_len = r->type == VKWS_REC_CHAT ? r->frame_len : 0;
	total = hn + iov[1].iov_len;
	if (write_all(log_fd, iov, 2) < 0)
		goto bad;
	dirty = 1;
	if (cfg->fsync_mode == VKWS_FSYNC_ALWAYS) {
		stats.syncs++;
		if (data_sync(log_fd) < 0)
			goto bad;
	}
	log_size += total;
	stats.records++;
	stats.bytes += total;
	return 0;
bad:
	/* Cut what part of the record went out, so the next good record
	 * is not written behind garbage; if even that fails, the
	 * compaction that ends the broken state replaces the file. */
	e = errno;
	(void)!ftruncate(log_fd, (off_t)log_size);
	fail("cannot write the log", e);
	return -1;
}

int
vkws_store_chat(const char *room, size_t n, uint64_t life, uint64_t seq,
    const char *frame, size_t fn)
{
	struct vkws_rec r;

	memset(&r, 0, sizeof(r));
	r.type = VKWS_REC_CHAT;
	r.room = room;
	r.room_len = n;
	r.life = life;
	r.seq = seq;
	r.frame = frame;
	r.frame_len = fn;
	return append(&r);
}

int
vkws_store_room(const char *room, size_t n, uint32_t max_clients,
    int persistent, uint64_t life, int64_t created_at)
{
	struct vkws_rec r;

	/* seq 0: replay takes the largest seq a room's records name, and
	 * its chat records carry the real one. */
	memset(&r, 0, sizeof(r));
	r.type = VKWS_REC_ROOM;
	r.room = room;
	r.room_len = n;
	r.max_clients = max_clients;
	r.persistent = persistent;
	r.life = life;
	r.created_at = created_at;
	return append(&r);
}

int
vkws_store_room_deleted(const char *room, size_t n)
{
	struct vkws_rec r;

	memset(&r, 0, sizeof(r));
	r.type = VKWS_REC_DELETED;
	r.room = room;
	r.room_len = n;
	return append(&r);
}

/* ---- Compaction ------------------------------------------------------- */

/* The new file is written through wbuf; the first error sticks. */
static uint8_t wbuf[VKWS_STORE_WBUF];
static size_t wlen;
static int wfd = -1, werr;
static uint64_t wsize;

static void
wflush(void)
{
	struct iovec iov;

	if (wlen > 0 && werr == 0) {
		iov.iov_base = wbuf;
		iov.iov_len = wlen;
		if (write_all(wfd, &iov, 1) < 0)
			werr = errno;
	}
	wlen = 0;
}

static void
wrec(const struct vkws_rec *r)
{
	uint8_t head[VKWS_REC_FIXED];
	size_t hn = vkws_rec_encode(head, r);
	size_t fn = r->type == VKWS_REC_CHAT ? r->frame_len : 0;
	struct iovec iov[2];

	if (hn == 0 || werr != 0)
		return;	/* no record of ours is too large; see encode */
	wsize += hn + fn;
	if (wlen + hn + fn > sizeof(wbuf))
		wflush();
	if (hn + fn <= sizeof(wbuf)) {
		memcpy(wbuf + wlen, head, hn);
		if (fn > 0)
			memcpy(wbuf + wlen + hn, r->frame, fn);
		wlen += hn + fn;
		return;
	}
	iov[0].iov_base = head;
	iov[0].iov_len = hn;
	iov[1].iov_base = unconst(r->frame);
	iov[1].iov_len = fn;
	if (write_all(wfd, iov, 2) < 0)
		werr = errno;
}

static void
compact_chat(const char *room, size_t n, uint64_t seq, const char *frame,
    size_t fn, void *arg)
{
	struct vkws_rec r;

	memset(&r, 0, sizeof(r));
	r.type = VKWS_REC_CHAT;
	r.room = room;
	r.room_len = n;
	r.life = *(const uint64_t *)arg;
	r.seq = seq;
	r.frame = frame;
	r.frame_len = fn;
	wrec(&r);
}

/*
 * Every room in the table is kept, not only the persistent ones: a room
 * with members now may be made persistent later, and its history and
 * seq must then be there. Replay drops the others (vkws_restore_done).
 * The room record comes after the history, so that its seq, the room's
 * last, wins over the older ones of the history.
 */
static void
compact_room(const char *room, size_t n, uint32_t max_clients,
    int persistent, uint64_t seq, uint64_t life, int64_t created_at,
    void *arg)
{
	struct vkws_rec r;

	(void)arg;
	vkws_history_each(room, n, compact_chat, &life);
	memset(&r, 0, sizeof(r));
	r.type = VKWS_REC_ROOM;
	r.room = room;
	r.room_len = n;
	r.max_clients = max_clients;
	r.persistent = persistent;
	r.seq = seq;
	r.life = life;
	r.created_at = created_at;
	wrec(&r);
}

/*
 * Write the state in memory to log.tmp, make it durable, rename it over
 * the log and make the rename durable. A crash before the rename leaves
 * the old log (the tmp file is removed at start); after it, the new one,
 * already synced. Returns 0; -1 with errno if it failed before the
 * rename (the old log stays in use); -2 with errno if the directory could
 * not be synced after it (the new log is in use, but the rename may not
 * survive a crash, so the caller must try again).
 */
static int
compact(void)
{
	struct vkws_rec r;
	int e;

	wfd = open(path_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
	    O_CLOEXEC, 0600);
	if (wfd < 0)
		return -1;
	crash_point("compact-open");
	wlen = 0;
	werr = 0;
	wsize = 0;
	memset(&r, 0, sizeof(r));
	r.type = VKWS_REC_HEADER;
	r.version = VKWS_LOG_VERSION;
	wrec(&r);
	vkws_room_each(compact_room, NULL);
	wflush();
	if (werr != 0) {
		errno = werr;
		goto bad;
	}
	crash_point("compact-written");
	if (fsync(wfd) < 0)
		goto bad;
	crash_point("compact-synced");
	if (rename(path_tmp, path_log) < 0)
		goto bad;
	crash_point("compact-renamed");
	/* From here on the new file is the log, whatever else fails. */
	if (log_fd >= 0)
		close(log_fd);
	log_fd = wfd;
	wfd = -1;
	log_size = wsize;
	compact_at = cfg->log_max ? cfg->log_max : VKWS_LOG_MAX;
	/* When the kept state alone is near --log-max, wait until the log
	 * doubles: compaction then never writes more than was appended. */
	if (compact_at < 2 * wsize)
		compact_at = 2 * wsize;
	stats.compactions++;
	stats.syncs += 2;	/* the new file and the directory */
	if (dir_sync() < 0)
		return -2;
	crash_point("compact-done");
	return 0;
bad:
	e = errno;
	close(wfd);
	wfd = -1;
	(void)unlink(path_tmp);
	errno = e;
	return -1;
}

/* ---- Start: replay ---------------------------------------------------- */

static uint64_t restore_failures;	/* records the room table had no room for */
static uint64_t rejected;		/* records refused for what they say */
static uint64_t first_rejected;		/* offset of the first refused one */

static void
replay_one(const struct vkws_rec *r, void *arg)
{
	int rc = 0;

	switch (r->type) {
	case VKWS_REC_ROOM:
		/* A last seq of 2^64-1 would make the next one 0. */
		if (r->seq == UINT64_MAX)
			rc = VKWS_RESTORE_INVALID;
		else
			rc = vkws_restore_room(r->room, r->room_len,
			    r->max_clients, r->persistent, r->seq, r->life,
			    r->created_at);
		break;
	case VKWS_REC_CHAT:
		if (r->seq == 0 || r->seq == UINT64_MAX)
			rc = VKWS_RESTORE_INVALID;
		else
			rc = vkws_restore_chat(r->room, r->room_len, r->life,
			    r->seq, r->frame, r->frame_len);
		break;
	case VKWS_REC_DELETED:
		rc = vkws_restore_room_deleted(r->room, r->room_len);
		break;
	default:
		break;	/* the header */
	}
	if (rc == VKWS_RESTORE_INVALID) {
		/* vkws_log_scan() sets good to where this record starts. */
		if (rejected++ == 0)
			first_rejected = ((const struct vkws_scan *)arg)->good;
	} else if (rc < 0)
		restore_failures++;
}

static const char *
rec_error(int err)
{
	switch (err) {
	case VKWS_REC_EBADLEN:
		return "bad length";
	case VKWS_REC_EBADTYPE:
		return "bad type";
	case VKWS_REC_ECRC:
		return "checksum mismatch";
	case VKWS_REC_EPAYLOAD:
		return "bad payload";
	case VKWS_REC_ETORN:
		return "file ends inside the record";
	default:
		return "no header record";
	}
}

/* Rename the damaged log to log.WHY-MS (never over another file). */
static int
keep_aside(const char *why)
{
	struct stat sb;
	int64_t t = vkws_wall_ms();
	int i;

	for (i = 0; i < 100; i++) {
		(void)snprintf(path_aside, sizeof(path_aside),
		    "%s.%s-%lld", path_log, why, (long long)t + i);
		if (stat(path_aside, &sb) < 0 && errno == ENOENT)
			return rename(path_log, path_aside);
	}
	errno = EEXIST;
	return -1;
}

/* Replay the log into the room table; 1 if it must be replaced by a
 * compaction, 0 if appends may go on at its end, -1 to refuse to start. */
static int
replay(void)
{
	static char why[96];
	struct vkws_scan sc;
	int fd = open(path_log, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		return 1;	/* a new log */
	if (fd < 0) {
		vkws_log("store: cannot read %s: %s", path_log,
		    strerror(errno));
		return -1;
	}
	if (vkws_log_scan(fd, replay_one, &sc, &sc) < 0) {
		vkws_log("store: cannot read %s: %s", path_log,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (restore_failures > 0)
		vkws_log("store: %llu records did not fit the room table",
		    (unsigned long long)restore_failures);
	log_size = sc.good;
	if (rejected > 0) {
		/* Good checksums around what no writer of ours wrote: keep
		 * the whole file for a human, serve only what passed. */
		vkws_log("store: refused %llu records of %s (the first at "
		    "offset %llu): a chat record that is not a chat message "
		    "of its room and seq in valid UTF-8 JSON, or a seq of "
		    "0 or 2^64-1; they are not served", (unsigned long long)
		    rejected, path_log, (unsigned long long)first_rejected);
		if (sc.err != 0)
			vkws_log("store: %s is also damaged at offset %llu "
			    "(%s); replay stopped there", path_log,
			    (unsigned long long)sc.good, rec_error(sc.err));
		if (keep_aside("rejected") < 0) {
			vkws_log("store: cannot keep %s aside: %s", path_log,
			    strerror(errno));
			return -1;
		}
		vkws_log("store: kept the file as %s, starting a new log "
		    "with the %llu records replayed", path_aside,
		    (unsigned long long)(sc.records - rejected));
		return 1;
	}
	if (sc.err == 0) {
		vkws_log("store: replayed %llu records (%llu bytes) of %s",
		    (unsigned long long)sc.records,
		    (unsigned long long)sc.size, path_log);
		return sc.size == 0 ? 1 : 0;
	}
	if (sc.next_good == 0 && !sc.gave_up && sc.good > 0) {
		/* A torn tail: the last write did not finish. */
		vkws_log("store: replayed %llu records of %s; cut a torn "
		    "tail of %llu bytes at offset %llu (%s)",
		    (unsigned long long)sc.records, path_log,
		    (unsigned long long)(sc.size - sc.good),
		    (unsigned long long)sc.good, rec_error(sc.err));
		if (truncate(path_log, (off_t)sc.good) < 0) {
			vkws_log("store: cannot cut %s: %s", path_log,
			    strerror(errno));
			return 1;
		}
		return 0;
	}
	/* Damage with good records behind it, or a file that is not a
	 * log: replay stopped before it; keep the file for a human. */
	if (keep_aside("corrupt") < 0) {
		vkws_log("store: %s is corrupt at offset %llu (%s) and cannot "
		    "be kept aside: %s", path_log, (unsigned long long)sc.good,
		    rec_error(sc.err), strerror(errno));
		return -1;
	}
	if (sc.next_good != 0)
		(void)snprintf(why, sizeof(why), "a good record follows at "
		    "%llu", (unsigned long long)sc.next_good);
	else if (sc.gave_up)
		(void)snprintf(why, sizeof(why), "%llu bytes after it look "
		    "like records at too many offsets to check",
		    (unsigned long long)(sc.size - sc.good));
	else
		(void)snprintf(why, sizeof(why), "no good record follows");
	vkws_log("store: %s is corrupt at offset %llu (%s), %s; replayed the "
	    "%llu records before it, kept the file as %s, starting a new log",
	    path_log, (unsigned long long)sc.good, rec_error(sc.err), why,
	    (unsigned long long)sc.records, path_aside);
	return 1;
}

int
vkws_store_open(struct vkws_config *c)
{
	struct sigaction sa;
	size_t n = strlen(c->data_dir);
	int r;

	cfg = c;
	if (n == 0)
		return 0;
	on = 1;
	/* A file size limit must fail a write, not kill the server. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGXFSZ, &sa, NULL);
	memcpy(path_dir, c->data_dir, n + 1);
	(void)snprintf(path_log, sizeof(path_log), "%s/log", path_dir);
	(void)snprintf(path_tmp, sizeof(path_tmp), "%s/log.tmp", path_dir);
	if (mkdir(path_dir, 0700) < 0 && errno != EEXIST)
		vkws_log("store: cannot create %s: %s", path_dir,
		    strerror(errno));
	(void)unlink(path_tmp);	/* a compaction cut short */
	r = replay();
	/* Rooms whose life ended at this start (not kept), and rooms that
	 * got a life only now (the default room of a new name, a version 1
	 * log), must be so in the log before anything is appended: it is
	 * rewritten from memory. */
	if (vkws_restore_done() > 0 && r == 0)
		r = 1;
	if (r < 0)
		return -1;
	compact_at = c->log_max ? c->log_max : VKWS_LOG_MAX;
	if (r == 0) {
		log_fd = open(path_log, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (log_fd < 0)
			r = 1;
	}
	/* A new or damaged log is replaced at once; an old one that is
	 * over --log-max is compacted here or at the first pass. */
	if (r == 1 && compact() != 0) {
		/* Serve anyway, refusing chat, and retry: all that was on
		 * disk is in memory now. */
		fail("cannot write a new log", errno);
	}
	return 0;
}

/* ---- Once per loop pass ----------------------------------------------- */

/*
 * Clean stop: whatever the --fsync mode, what was written reaches the
 * disk before the process exits (PROTOCOL.md 3: SIGTERM "writes what it
 * must to disk"), and the log is closed.
 */
void
vkws_store_close(void)
{
	if (!on || log_fd < 0)
		return;
	if (!broken && fdatasync(log_fd) < 0)
		vkws_log("store: cannot sync the log at exit: %s",
		    strerror(errno));
	close(log_fd);
	log_fd = -1;
	on = 0;
}

int
vkws_store_unsynced(void)
{
	return on && dirty && cfg->fsync_mode == VKWS_FSYNC_BATCH;
}

int
vkws_store_sync(void)
{
	int rc = 0;

	if (!on)
		return 0;
	if (dirty) {
		dirty = 0;
		/* --fsync batch: one sync makes the whole pass durable
		 * before its acks go out. A write that failed in this pass
		 * cut only its own record: those before it were written
		 * whole, their acks wait for this sync, so it is done even
		 * though the log is broken now. */
		if (cfg->fsync_mode == VKWS_FSYNC_BATCH && log_fd >= 0) {
			stats.syncs++;
			if (data_sync(log_fd) < 0) {
				fail("cannot sync the log", errno);
				rc = -1;
			}
		}
	}
	return rc;
}

void
vkws_store_tick(void)
{
	int64_t now;

	if (!on || (!broken && log_size < compact_at))
		return;
	now = vkws_now_ms();
	if (now < retry_at)
		return;
	switch (compact()) {
	case 0:
		if (broken)
			vkws_log("store: the log is written again (%llu "
			    "failures)", (unsigned long long)stats.failures);
		broken = 0;
		retry_at = 0;
		return;
	case -2:
		fail("cannot sync the data directory", errno);
		return;
	default:
		break;
	}
	if (broken) {
		retry_at = now + VKWS_STORE_RETRY;
		fail("still cannot write the log", errno);
	} else {
		/* The old log is still good: go on appending to it. */
		retry_at = now + VKWS_STORE_RETRY;
		if (now - complained_at >= VKWS_STORE_LOG_EVERY) {
			vkws_log("store: cannot compact the log: %s",
			    strerror(errno));
			complained_at = now;
		}
	}
}
