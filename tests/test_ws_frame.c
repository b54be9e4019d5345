/*
 * test_ws_frame.c: unit tests of the RFC 6455 codec (ws_frame.c). Every
 * RFC example is fed whole and again one prefix at a time, and each
 * prefix is placed against an unreadable page so that a read past the
 * given length crashes at once. Every MUST the codec checks has a case
 * on each side of its boundary. No network, no files besides /dev/zero
 * for the guard page.
 */

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ws_frame.h"

#define MAX_ANY UINT64_MAX
#define MAX_16K 16384u

/* Bytes that may be placed against the guard page. */
#define EDGE_CAP (128u * 1024u)

static uint8_t *edge_base;	/* EDGE_CAP readable bytes, then a guard */
static uint8_t edge_fallback[EDGE_CAP];

/*
 * Map EDGE_CAP bytes followed by a PROT_NONE page. If that fails the
 * tests still run from a static buffer, only without the guard.
 */
static void
edge_init(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t pgsz, cap;
	void *m;
	int fd;

	edge_base = edge_fallback;
	if (pg <= 0)
		return;
	pgsz = (size_t)pg;
	cap = (EDGE_CAP + pgsz - 1) / pgsz * pgsz;
	if ((fd = open("/dev/zero", O_RDWR)) < 0)
		return;
	m = mmap(NULL, cap + pgsz, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd,
	    0);
	close(fd);
	if (m == MAP_FAILED)
		return;
	if (mprotect((uint8_t *)m + cap, pgsz, PROT_NONE) != 0) {
		fprintf(stderr, "no guard page: mprotect failed\n");
		return;
	}
	edge_base = (uint8_t *)m + cap - EDGE_CAP;
}

/* A copy of src[0..n) whose last byte is the last readable byte. */
static uint8_t *
edge(const void *src, size_t n)
{
	uint8_t *dst = edge_base + EDGE_CAP - n;

	if (n > 0)
		memmove(dst, src, n);
	return dst;
}

static int
parse(struct ws_frame *f, const uint8_t *b, size_t n, int need_mask,
    const struct ws_rx *rx, uint64_t max)
{
	return ws_frame_parse(f, edge(b, n), n, need_mask, rx, max);
}

/*
 * Every prefix shorter than the header returns 0; the whole header, and
 * the header with up to 8 payload bytes and with all n bytes, returns
 * the header length.
 */
#define PREFIXES(f, b, n, hdr, nm, rx, max) \
	prefixes(__LINE__, f, b, n, hdr, nm, rx, max)
static void
prefixes(int line, struct ws_frame *f, const uint8_t *b, size_t n,
    size_t hdr, int nm, const struct ws_rx *rx, uint64_t max)
{
	int before = check_fail;
	size_t k;

	for (k = 0; k < hdr; k++)
		CHECK_EQ(parse(f, b, k, nm, rx, max), 0);
	for (k = hdr; k <= n && k <= hdr + 8; k++)
		CHECK_EQ(parse(f, b, k, nm, rx, max), hdr);
	CHECK_EQ(parse(f, b, n, nm, rx, max), hdr);
	if (check_fail != before)
		fprintf(stderr, "  (prefixes from line %d)\n", line);
}

/*
 * The error is reported as soon as the first `at` bytes are in, and for
 * every longer prefix; before that the parser asks for more.
 */
#define ERR_AT(b, at, err, nm, rx, max) \
	err_at(__LINE__, b, sizeof(b), at, err, nm, rx, max)
static void
err_at(int line, const uint8_t *b, size_t n, size_t at, int err, int nm,
    const struct ws_rx *rx, uint64_t max)
{
	struct ws_frame f;
	int before = check_fail;
	size_t k;

	for (k = 0; k < at; k++)
		CHECK_EQ(parse(&f, b, k, nm, rx, max), 0);
	for (k = at; k <= n; k++)
		CHECK_EQ(parse(&f, b, k, nm, rx, max), err);
	if (check_fail != before)
		fprintf(stderr, "  (err_at from line %d)\n", line);
}

static const uint8_t rfc_key[4] = { 0x37, 0xfa, 0x21, 0x3d };

static void
test_accept_key(void)
{
	static const struct {
		const char *key, *accept;
	} v[] = {
		/* RFC 6455 1.3. */
		{ "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" },
		{ "x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" },
		{ "AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=" },
	};
	char out[WS_ACCEPT_LEN + 1];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		out[WS_ACCEPT_LEN] = '#';
		ws_accept_key((const char *)edge(v[i].key, 24), 24, out);
		CHECK_MEM(out, v[i].accept, WS_ACCEPT_LEN);
		CHECK_EQ(out[WS_ACCEPT_LEN], '#');
	}
}

/* RFC 6455 5.7: a single-frame unmasked text message. */
static void
test_rfc_unmasked_text(void)
{
	static const uint8_t b[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
	struct ws_frame f;

	PREFIXES(&f, b, sizeof(b), 2, 0, NULL, MAX_16K);
	CHECK_EQ(f.fin, 1);
	CHECK_EQ(f.opcode, WS_OP_TEXT);
	CHECK_EQ(f.masked, 0);
	CHECK_EQ(f.hdr_len, 2);
	CHECK_EQ(f.payload_len, 5);
	CHECK_MEM(b + f.hdr_len, "Hello", 5);
	/* The same frame from a client: the server MUST refuse it. */
	ERR_AT(b, 2, WS_ERR_UNMASKED, 1, NULL, MAX_16K);
}

/* RFC 6455 5.7: a single-frame masked text message, unmasked in place. */
static void
test_rfc_masked_text(void)
{
	static const uint8_t b[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
	    0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame f;
	struct ws_rx rx;
	uint8_t pl[5];

	memset(&rx, 0, sizeof(rx));
	PREFIXES(&f, b, sizeof(b), 6, 1, &rx, MAX_16K);
	CHECK_EQ(f.fin, 1);
	CHECK_EQ(f.opcode, WS_OP_TEXT);
	CHECK_EQ(f.masked, 1);
	CHECK_MEM(f.mask, rfc_key, 4);
	CHECK_EQ(f.payload_len, 5);
	memcpy(pl, b + 6, 5);
	ws_unmask(pl, 5, f.mask, 0);
	CHECK_MEM(pl, "Hello", 5);
	CHECK_EQ(ws_rx_accept(&rx, &f, pl, 5), 1);
	CHECK_EQ(rx.in_message, 0);
	/* A masked frame is accepted where no mask is required. */
	PREFIXES(&f, b, sizeof(b), 6, 0, NULL, MAX_16K);
	CHECK_EQ(f.masked, 1);
}

/* RFC 6455 5.7: a fragmented unmasked text message, "Hel" then "lo". */
static void
test_rfc_fragmented(void)
{
	static const uint8_t b1[] = { 0x01, 0x03, 'H', 'e', 'l' };
	static const uint8_t b2[] = { 0x80, 0x02, 'l', 'o' };
	struct ws_frame f;
	struct ws_rx rx;

	memset(&rx, 0, sizeof(rx));
	PREFIXES(&f, b1, sizeof(b1), 2, 0, &rx, MAX_16K);
	CHECK_EQ(f.fin, 0);
	CHECK_EQ(f.opcode, WS_OP_TEXT);
	CHECK_EQ(f.payload_len, 3);
	CHECK_EQ(ws_rx_accept(&rx, &f, b1 + 2, 3), 0);
	CHECK_EQ(rx.in_message, 1);
	CHECK_EQ(rx.msg_opcode, WS_OP_TEXT);
	CHECK_EQ(rx.msg_len, 3);

	/* The continuation now fits, and a new message would not. */
	PREFIXES(&f, b2, sizeof(b2), 2, 0, &rx, MAX_16K);
	ERR_AT(b1, 1, WS_ERR_NOT_CONT, 0, &rx, MAX_16K);
	CHECK_EQ(f.fin, 1);
	CHECK_EQ(f.opcode, WS_OP_CONT);
	CHECK_EQ(f.payload_len, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, b2 + 2, 2), 1);
	CHECK_EQ(rx.in_message, 0);
	CHECK_EQ(rx.msg_len, 0);
	CHECK_EQ(rx.utf8, WS_UTF8_ACCEPT);

	/* With the message over, a continuation is out of place again. */
	ERR_AT(b2, 1, WS_ERR_CONT, 0, &rx, MAX_16K);
}

/* RFC 6455 5.7: an unmasked ping and its masked pong. */
static void
test_rfc_ping_pong(void)
{
	static const uint8_t ping[] = { 0x89, 0x05, 'H', 'e', 'l', 'l', 'o' };
	static const uint8_t pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
	    0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame f;
	struct ws_rx rx, saved;
	uint8_t pl[5];

	PREFIXES(&f, ping, sizeof(ping), 2, 0, NULL, MAX_16K);
	CHECK_EQ(f.opcode, WS_OP_PING);
	CHECK_EQ(f.fin, 1);
	CHECK_EQ(f.payload_len, 5);

	PREFIXES(&f, pong, sizeof(pong), 6, 1, NULL, MAX_16K);
	CHECK_EQ(f.opcode, WS_OP_PONG);
	CHECK_EQ(f.payload_len, 5);
	memcpy(pl, pong + 6, 5);
	ws_unmask(pl, 5, f.mask, 0);
	CHECK_MEM(pl, "Hello", 5);

	/* A control frame inside a fragmented message leaves it alone. */
	memset(&rx, 0, sizeof(rx));
	rx.in_message = 1;
	rx.msg_opcode = WS_OP_TEXT;
	rx.msg_len = 7;
	saved = rx;
	PREFIXES(&f, pong, sizeof(pong), 6, 1, &rx, MAX_16K);
	CHECK_EQ(ws_rx_accept(&rx, &f, pl, 5), 1);
	CHECK_MEM(&rx, &saved, sizeof(rx));
}

/* RFC 6455 5.7: 256 bytes and 64 KiB binary messages. */
static void
test_rfc_long_binary(void)
{
	static uint8_t b[14 + 65536];
	static const uint8_t h16[] = { 0x82, 0x7E, 0x01, 0x00 };
	static const uint8_t h64[] = { 0x82, 0x7F, 0x00, 0x00, 0x00, 0x00,
	    0x00, 0x01, 0x00, 0x00 };
	struct ws_frame f;

	memset(b, 0x5a, sizeof(b));
	memcpy(b, h16, sizeof(h16));
	PREFIXES(&f, b, 4 + 256, 4, 0, NULL, MAX_16K);
	CHECK_EQ(f.opcode, WS_OP_BINARY);
	CHECK_EQ(f.payload_len, 256);
	CHECK_EQ(f.hdr_len, 4);

	memcpy(b, h64, sizeof(h64));
	PREFIXES(&f, b, 10 + 65536, 10, 0, NULL, 65536);
	CHECK_EQ(f.opcode, WS_OP_BINARY);
	CHECK_EQ(f.payload_len, 65536);
	CHECK_EQ(f.hdr_len, 10);

	/* The same two frames masked, as a client sends them. */
	memcpy(b, h16, sizeof(h16));
	b[1] |= 0x80;
	memcpy(b + 4, rfc_key, 4);
	PREFIXES(&f, b, 8 + 256, 8, 1, NULL, MAX_16K);
	CHECK_EQ(f.payload_len, 256);
	CHECK_MEM(f.mask, rfc_key, 4);

	memcpy(b, h64, sizeof(h64));
	b[1] |= 0x80;
	memcpy(b + 10, rfc_key, 4);
	PREFIXES(&f, b, 14 + 65536, 14, 1, NULL, 65536);
	CHECK_EQ(f.payload_len, 65536);
	CHECK_MEM(f.mask, rfc_key, 4);
}

/* Unmasking in pieces at their payload offsets equals unmasking whole. */
static void
test_unmask_pieces(void)
{
	enum { N = 61 };
	uint8_t plain[N], masked[N], buf[N];
	size_t i, step, s, off;
	int ok;

	for (i = 0; i < N; i++)
		plain[i] = (uint8_t)(i * 37 + 11);
	for (i = 0; i < N; i++)
		masked[i] = plain[i] ^ rfc_key[i % 4];

	memcpy(buf, masked, N);
	ws_unmask(buf, N, rfc_key, 0);
	CHECK_MEM(buf, plain, N);

	/* Fixed piece sizes, 1 to 9 bytes. */
	for (step = 1; step <= 9; step++) {
		memcpy(buf, masked, N);
		for (off = 0; off < N; off += step)
			ws_unmask(buf + off, off + step <= N ? step : N - off,
			    rfc_key, off);
		CHECK_MEM(buf, plain, N);
	}
	/* Two pieces, split at every point; an empty piece is a no-op. */
	ok = 1;
	for (s = 0; s <= N; s++) {
		memcpy(buf, masked, N);
		ws_unmask(buf, s, rfc_key, 0);
		ws_unmask(buf + s, N - s, rfc_key, s);
		if (memcmp(buf, plain, N) != 0)
			ok = 0;
	}
	CHECK(ok);
	/* Offsets beyond 32 bits still select the right key byte. */
	memcpy(buf, masked + 3, 8);
	ws_unmask(buf, 8, rfc_key, ((uint64_t)1 << 40) + 3);
	CHECK_MEM(buf, plain + 3, 8);
	/* Unmasking twice gives back the masked bytes. */
	memcpy(buf, masked, N);
	ws_unmask(buf, N, rfc_key, 0);
	ws_unmask(buf, N, rfc_key, 0);
	CHECK_MEM(buf, masked, N);
	/* A piece against the guard page is not overrun. */
	ws_unmask(edge(masked + 5, 7), 7, rfc_key, 5);
	CHECK_MEM(edge_base + EDGE_CAP - 7, plain + 5, 7);
}

/* RFC 6455 5.2: RSV1-3 set without an extension. */
static void
test_rsv(void)
{
	static const uint8_t bits[] = { 0x40, 0x20, 0x10, 0x70 };
	uint8_t b[] = { 0, 0x85, 0x37, 0xfa, 0x21, 0x3d, 'x' };
	size_t i;

	for (i = 0; i < sizeof(bits); i++) {
		b[0] = (uint8_t)(0x81 | bits[i]);
		ERR_AT(b, 1, WS_ERR_RSV, 1, NULL, MAX_16K);
		b[0] = (uint8_t)(0x02 | bits[i]);
		ERR_AT(b, 1, WS_ERR_RSV, 1, NULL, MAX_16K);
	}
	/* RSV comes before a bad opcode in the same byte. */
	b[0] = 0xF3;
	ERR_AT(b, 1, WS_ERR_RSV, 1, NULL, MAX_16K);
}

/* RFC 6455 5.2: opcodes 3-7 and B-F are reserved. */
static void
test_opcode(void)
{
	uint8_t b[] = { 0, 0x85, 0x37, 0xfa, 0x21, 0x3d, 'x' };
	struct ws_rx rx;
	unsigned int op;

	memset(&rx, 0, sizeof(rx));
	for (op = 0; op < 16; op++) {
		if (op <= 2 || (op >= 8 && op <= 10))
			continue;
		b[0] = (uint8_t)(0x80 | op);
		ERR_AT(b, 1, WS_ERR_OPCODE, 1, NULL, MAX_16K);
		b[0] = (uint8_t)op;
		ERR_AT(b, 1, WS_ERR_OPCODE, 1, &rx, MAX_16K);
	}
}

/* RFC 6455 5.5: control frames are final and at most 125 bytes. */
static void
test_control(void)
{
	uint8_t b[] = { 0, 0x85, 0x37, 0xfa, 0x21, 0x3d, 'x' };
	uint8_t big[] = { 0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4 };
	uint8_t ok[] = { 0x89, 0xFD, 1, 2, 3, 4 };
	struct ws_frame f;
	unsigned int op;

	for (op = WS_OP_CLOSE; op <= WS_OP_PONG; op++) {
		b[0] = (uint8_t)op;
		ERR_AT(b, 1, WS_ERR_CTL_FRAG, 1, NULL, MAX_16K);
		/* Byte 0 is judged before the mask bit in byte 1. */
		b[1] = 0x05;
		ERR_AT(b, 1, WS_ERR_CTL_FRAG, 1, NULL, MAX_16K);
		b[1] = 0x85;

		big[0] = (uint8_t)(0x80 | op);
		big[1] = 0xFE;
		ERR_AT(big, 2, WS_ERR_CTL_LEN, 1, NULL, MAX_16K);
		big[1] = 0xFF;
		ERR_AT(big, 2, WS_ERR_CTL_LEN, 1, NULL, MAX_16K);
		big[1] = 0x7E;
		ERR_AT(big, 2, WS_ERR_CTL_LEN, 0, NULL, MAX_16K);

		/* 125 bytes is allowed, whatever max_msg says. */
		ok[0] = (uint8_t)(0x80 | op);
		PREFIXES(&f, ok, sizeof(ok), 6, 1, NULL, 0);
		CHECK_EQ(f.payload_len, 125);
		CHECK_EQ(f.opcode, op);
	}
	/* An unmasked oversized control frame from a client: the mask bit
	 * is checked first. */
	big[0] = 0x89;
	big[1] = 0x7E;
	ERR_AT(big, 2, WS_ERR_UNMASKED, 1, NULL, MAX_16K);
}

/* RFC 6455 5.2: lengths in their shortest form, 64-bit MSB clear. */
static void
test_len_enc(void)
{
	uint8_t s16[] = { 0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4 };
	uint8_t s64[] = { 0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF,
	    1, 2, 3, 4 };
	uint8_t msb[] = { 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
	struct ws_frame f;

	ERR_AT(s16, 4, WS_ERR_LEN_ENC, 1, NULL, MAX_16K);
	s16[3] = 0x00;
	ERR_AT(s16, 4, WS_ERR_LEN_ENC, 1, NULL, MAX_16K);
	s16[3] = 0x7E;
	PREFIXES(&f, s16, sizeof(s16), 8, 1, NULL, MAX_16K);
	CHECK_EQ(f.payload_len, 126);

	ERR_AT(s64, 10, WS_ERR_LEN_ENC, 1, NULL, MAX_ANY);
	s64[8] = 0x00;
	s64[9] = 0x7E;
	ERR_AT(s64, 10, WS_ERR_LEN_ENC, 1, NULL, MAX_ANY);
	s64[9] = 0x00;
	ERR_AT(s64, 10, WS_ERR_LEN_ENC, 1, NULL, MAX_ANY);
	s64[7] = 0x01;
	PREFIXES(&f, s64, sizeof(s64), 14, 1, NULL, MAX_ANY);
	CHECK_EQ(f.payload_len, 65536);

	/* The MSB is refused at its own byte, before the rest arrives. */
	ERR_AT(msb, 3, WS_ERR_LEN_ENC, 1, NULL, MAX_ANY);
	memset(msb + 2, 0xFF, 8);
	ERR_AT(msb, 3, WS_ERR_LEN_ENC, 1, NULL, MAX_ANY);
	/* The largest length allowed. */
	msb[2] = 0x7F;
	PREFIXES(&f, msb, sizeof(msb), 14, 1, NULL, MAX_ANY);
	CHECK_EQ(f.payload_len, UINT64_MAX >> 1);
}

/* RFC 6455 5.4: continuation order, checked only when rx is given. */
static void
test_fragment_order(void)
{
	uint8_t b[] = { 0x80, 0x85, 0x37, 0xfa, 0x21, 0x3d, 'x' };
	struct ws_frame f;
	struct ws_rx rx;

	memset(&rx, 0, sizeof(rx));
	ERR_AT(b, 1, WS_ERR_CONT, 1, &rx, MAX_16K);
	b[0] = 0x00;
	ERR_AT(b, 1, WS_ERR_CONT, 1, &rx, MAX_16K);
	PREFIXES(&f, b, sizeof(b), 6, 1, NULL, MAX_16K);

	rx.in_message = 1;
	rx.msg_opcode = WS_OP_BINARY;
	b[0] = 0x81;
	ERR_AT(b, 1, WS_ERR_NOT_CONT, 1, &rx, MAX_16K);
	b[0] = 0x02;
	ERR_AT(b, 1, WS_ERR_NOT_CONT, 1, &rx, MAX_16K);
	b[0] = 0x80;
	PREFIXES(&f, b, sizeof(b), 6, 1, &rx, MAX_16K);
	b[0] = 0x89;
	PREFIXES(&f, b, sizeof(b), 6, 1, &rx, MAX_16K);
	/* Opcode errors outrank order errors in the same byte. */
	b[0] = 0x83;
	ERR_AT(b, 1, WS_ERR_OPCODE, 1, &rx, MAX_16K);
}

/* The message limit: exactly at it and one byte past, alone and across
 * fragments. */
static void
test_too_big(void)
{
	uint8_t b[] = { 0x82, 0x80 | 100, 1, 2, 3, 4 };
	uint8_t b16[] = { 0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4 };
	uint8_t b64[] = { 0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 };
	static const uint8_t zeros[40];
	struct ws_frame f;
	struct ws_rx rx;

	PREFIXES(&f, b, sizeof(b), 6, 1, NULL, 100);
	b[1] = 0x80 | 101;
	ERR_AT(b, 2, WS_ERR_TOO_BIG, 1, NULL, 100);
	PREFIXES(&f, b, sizeof(b), 6, 1, NULL, 101);

	PREFIXES(&f, b16, sizeof(b16), 8, 1, NULL, 256);
	ERR_AT(b16, 4, WS_ERR_TOO_BIG, 1, NULL, 255);
	PREFIXES(&f, b64, sizeof(b64), 14, 1, NULL, 65536);
	ERR_AT(b64, 10, WS_ERR_TOO_BIG, 1, NULL, 65535);

	/* An empty data frame fits a zero limit, one byte does not. */
	b[1] = 0x80;
	PREFIXES(&f, b, sizeof(b), 6, 1, NULL, 0);
	b[1] = 0x81;
	ERR_AT(b, 2, WS_ERR_TOO_BIG, 1, NULL, 0);

	/* A continuation adds to the open message. */
	memset(&rx, 0, sizeof(rx));
	rx.in_message = 1;
	rx.msg_opcode = WS_OP_BINARY;
	rx.msg_len = 60;
	b[0] = 0x80;
	b[1] = 0x80 | 40;
	PREFIXES(&f, b, sizeof(b), 6, 1, &rx, 100);
	b[1] = 0x80 | 41;
	ERR_AT(b, 2, WS_ERR_TOO_BIG, 1, &rx, 100);
	/* Without rx only the frame itself counts. */
	PREFIXES(&f, b, sizeof(b), 6, 1, NULL, 100);
	b[1] = 0x80 | 101;
	ERR_AT(b, 2, WS_ERR_TOO_BIG, 1, NULL, 100);
	/* A message already at the limit takes only empty frames. */
	rx.msg_len = 100;
	b[1] = 0x80;
	PREFIXES(&f, b, sizeof(b), 6, 1, &rx, 100);
	b[1] = 0x81;
	ERR_AT(b, 2, WS_ERR_TOO_BIG, 1, &rx, 100);
	/* A control frame inside it is not counted. */
	b[0] = 0x89;
	b[1] = 0x80 | 125;
	PREFIXES(&f, b, sizeof(b), 6, 1, &rx, 100);

	/* The sum cannot wrap around. */
	rx.msg_len = UINT64_MAX - 5;
	b64[0] = 0x80;
	ERR_AT(b64, 10, WS_ERR_TOO_BIG, 1, &rx, MAX_ANY);
	rx.msg_len = UINT64_MAX - 65536;
	PREFIXES(&f, b64, sizeof(b64), 14, 1, &rx, MAX_ANY);

	/* Built up through ws_rx_accept: two fragments of 40 fit under
	 * 100, a third does not, 20 more still do. */
	memset(&rx, 0, sizeof(rx));
	b[0] = 0x02;
	b[1] = 0x80 | 40;
	CHECK_EQ(parse(&f, b, sizeof(b), 1, &rx, 100), 6);
	CHECK_EQ(ws_rx_accept(&rx, &f, zeros, 40), 0);
	b[0] = 0x00;
	CHECK_EQ(parse(&f, b, sizeof(b), 1, &rx, 100), 6);
	CHECK_EQ(ws_rx_accept(&rx, &f, zeros, 40), 0);
	CHECK_EQ(rx.msg_len, 80);
	ERR_AT(b, 2, WS_ERR_TOO_BIG, 1, &rx, 100);
	b[0] = 0x80;
	b[1] = 0x80 | 20;
	CHECK_EQ(parse(&f, b, sizeof(b), 1, &rx, 100), 6);
	CHECK_EQ(ws_rx_accept(&rx, &f, zeros, 20), 1);
	CHECK_EQ(rx.msg_len, 0);
}

/* A header that is not complete leaves *f untouched. */
static void
test_no_partial_write(void)
{
	static const uint8_t b[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d };
	struct ws_frame f, sentinel;
	size_t k;
	int same = 1;

	memset(&sentinel, 0xAA, sizeof(sentinel));
	for (k = 0; k < sizeof(b); k++) {
		f = sentinel;
		CHECK_EQ(parse(&f, b, k, 1, NULL, MAX_16K), 0);
		if (memcmp(&f, &sentinel, sizeof(f)) != 0)
			same = 0;
	}
	CHECK(same);
	f = sentinel;
	CHECK_EQ(parse(&f, b, sizeof(b), 0, NULL, 4), WS_ERR_TOO_BIG);
	CHECK_MEM(&f, &sentinel, sizeof(f));
}

/* ws_header_build uses the shortest form and parses back. */
static void
test_header_build(void)
{
	static const struct {
		uint64_t len;
		size_t hlen;
	} v[] = {
		{ 0, 2 }, { 1, 2 }, { 125, 2 }, { 126, 4 }, { 127, 4 },
		{ 65535, 4 }, { 65536, 10 }, { (uint64_t)1 << 32, 10 },
		{ UINT64_MAX >> 1, 10 },
	};
	static const uint8_t h126[] = { 0x81, 0x7E, 0x00, 0x7E };
	static const uint8_t h64k[] = { 0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0 };
	uint8_t out[WS_MAX_HEADER + 1];
	struct ws_frame f;
	size_t i, n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(out, 0xEE, sizeof(out));
		n = ws_header_build(out, 1, WS_OP_BINARY, v[i].len);
		CHECK_EQ(n, v[i].hlen);
		CHECK_EQ(out[n], 0xEE);
		CHECK_EQ(parse(&f, out, n, 0, NULL, MAX_ANY), (int)n);
		CHECK_EQ(f.payload_len, v[i].len);
		CHECK_EQ(f.fin, 1);
		CHECK_EQ(f.opcode, WS_OP_BINARY);
		CHECK_EQ(f.masked, 0);
		/* A client would refuse a server frame with a mask. */
		CHECK_EQ(out[1] & 0x80, 0);
	}
	n = ws_header_build(out, 1, WS_OP_TEXT, 126);
	CHECK_EQ(n, sizeof(h126));
	CHECK_MEM(out, h126, sizeof(h126));
	n = ws_header_build(out, 1, WS_OP_BINARY, 65536);
	CHECK_EQ(n, sizeof(h64k));
	CHECK_MEM(out, h64k, sizeof(h64k));
	n = ws_header_build(out, 0, WS_OP_TEXT, 3);
	CHECK_EQ(n, 2);
	CHECK_EQ(out[0], 0x01);
	CHECK_EQ(out[1], 0x03);
	n = ws_header_build(out, 1, WS_OP_CLOSE, 2);
	CHECK_EQ(out[0], 0x88);
	n = ws_header_build(out, 0, WS_OP_CONT, 0);
	CHECK_EQ(out[0], 0x00);
	CHECK_EQ(out[1], 0x00);
}

struct u8case {
	const char *s;
	size_t n;
	long bad;	/* index of the first invalid byte, -1 if none */
};
#define U8(lit, bad) { lit, sizeof(lit) - 1, bad }

static const struct u8case u8_valid[] = {
	U8("", -1),
	U8("hello, world", -1),
	U8("\x00\x7f", -1),
	U8("\xc2\x80", -1),		/* U+0080 */
	U8("\xc2\xa2", -1),		/* U+00A2 */
	U8("\xdf\xbf", -1),		/* U+07FF */
	U8("\xe0\xa0\x80", -1),		/* U+0800 */
	U8("\xe2\x82\xac", -1),		/* U+20AC */
	U8("\xed\x9f\xbf", -1),		/* U+D7FF, below the surrogates */
	U8("\xee\x80\x80", -1),		/* U+E000, above them */
	U8("\xef\xbf\xbf", -1),		/* U+FFFF */
	U8("\xf0\x90\x80\x80", -1),	/* U+10000 */
	U8("\xf0\x9d\x84\x9e", -1),	/* U+1D11E */
	U8("\xf3\xbf\xbf\xbf", -1),	/* U+FFFFF */
	U8("\xf4\x80\x80\x80", -1),	/* U+100000 */
	U8("\xf4\x8f\xbf\xbf", -1),	/* U+10FFFF */
	U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", -1),
	U8("\xe8\xbf\x9e\xe6\x8e\xa5\xe6\x88\x90\xe5\x8a\x9f", -1),
};

static const struct u8case u8_invalid[] = {
	U8("\x80", 0),			/* lone continuation */
	U8("a\xbf", 1),
	U8("\xc0\x80", 0),		/* overlong U+0000 */
	U8("\xc1\xbf", 0),		/* overlong U+007F */
	U8("\xe0\x80\x80", 1),		/* overlong 3-byte */
	U8("\xe0\x9f\xbf", 1),		/* overlong U+07FF */
	U8("\xed\xa0\x80", 1),		/* surrogate U+D800 */
	U8("\xed\xbf\xbf", 1),		/* surrogate U+DFFF */
	U8("\xf0\x80\x80\x80", 1),	/* overlong 4-byte */
	U8("\xf0\x8f\xbf\xbf", 1),	/* overlong U+FFFF */
	U8("\xf4\x90\x80\x80", 1),	/* U+110000 */
	U8("\xf5\x80\x80\x80", 0),
	U8("\xf8\x88\x80\x80\x80", 0),	/* old 5-byte form */
	U8("\xfe", 0),
	U8("\xff", 0),
	U8("\xc2\x41", 1),		/* lead without continuation */
	U8("\xe2\x82\x41", 2),
	U8("\xe2\xc2\xa2", 1),
	U8("abc\xf0\x9d\x84\x41xyz", 6),
	U8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited", 12),
};

static void
test_utf8_valid(void)
{
	uint32_t st;
	size_t i, k;
	int ok;

	for (i = 0; i < sizeof(u8_valid) / sizeof(u8_valid[0]); i++) {
		const struct u8case *c = &u8_valid[i];

		st = WS_UTF8_ACCEPT;
		CHECK_EQ(ws_utf8_feed(&st, edge(c->s, c->n), c->n), 0);
		CHECK(ws_utf8_complete(st));
		st = WS_UTF8_ACCEPT;
		ok = 1;
		for (k = 0; k < c->n; k++)
			if (ws_utf8_feed(&st, edge(c->s + k, 1), 1) != 0)
				ok = 0;
		CHECK(ok);
		CHECK(ws_utf8_complete(st));
	}
}

/* The error comes at the first invalid byte, fed whole or bytewise. */
static void
test_utf8_invalid(void)
{
	uint32_t st;
	size_t i, k;
	long first;

	for (i = 0; i < sizeof(u8_invalid) / sizeof(u8_invalid[0]); i++) {
		const struct u8case *c = &u8_invalid[i];
		size_t bad = (size_t)c->bad;

		st = WS_UTF8_ACCEPT;
		CHECK_EQ(ws_utf8_feed(&st, edge(c->s, c->n), c->n),
		    WS_ERR_UTF8);
		st = WS_UTF8_ACCEPT;
		CHECK_EQ(ws_utf8_feed(&st, edge(c->s, bad), bad), 0);
		CHECK_EQ(ws_utf8_feed(&st, edge(c->s + bad, 1), 1),
		    WS_ERR_UTF8);
		st = WS_UTF8_ACCEPT;
		first = -1;
		for (k = 0; k < c->n && first < 0; k++)
			if (ws_utf8_feed(&st, edge(c->s + k, 1), 1) != 0)
				first = (long)k;
		CHECK_EQ(first, c->bad);
		/* Failure is sticky, even for plain ASCII after it. */
		CHECK_EQ(ws_utf8_feed(&st, (const uint8_t *)"a", 1),
		    WS_ERR_UTF8);
		CHECK(!ws_utf8_complete(st));
	}
}

/* Truncated sequences are a valid prefix but not complete. */
static void
test_utf8_truncated(void)
{
	static const char *const t[] = { "\xc2", "\xe2\x82", "\xe0\xa0",
	    "\xf0\x9d\x84", "\xf4\x8f\xbf", "ok\xed\x9f" };
	uint32_t st;
	size_t i, n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = strlen(t[i]);
		st = WS_UTF8_ACCEPT;
		CHECK_EQ(ws_utf8_feed(&st, edge(t[i], n), n), 0);
		CHECK(!ws_utf8_complete(st));
	}
}

/* Text mixing 1- to 4-byte characters, fed in two pieces split at every
 * byte boundary. */
static const char mixed[] = "a\xc2\xa2\xe2\x82\xac\xf0\x9d\x84\x9ez"
    "\xf4\x8f\xbf\xbf";
#define MIXED_LEN (sizeof(mixed) - 1)

static void
test_utf8_split(void)
{
	/* Whether the text before each byte ends on a code point. */
	static const uint8_t boundary[MIXED_LEN + 1] = {
		1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1 };
	const uint8_t *m = (const uint8_t *)mixed;
	uint32_t st;
	size_t s;

	for (s = 0; s <= MIXED_LEN; s++) {
		st = WS_UTF8_ACCEPT;
		CHECK_EQ(ws_utf8_feed(&st, edge(m, s), s), 0);
		CHECK_EQ(ws_utf8_complete(st), boundary[s]);
		CHECK_EQ(ws_utf8_feed(&st, edge(m + s, MIXED_LEN - s),
		    MIXED_LEN - s), 0);
		CHECK(ws_utf8_complete(st));
	}
}

/* Text messages through ws_rx_accept. */
static void
rx_frame(struct ws_frame *f, int fin, int op, size_t n)
{
	memset(f, 0, sizeof(*f));
	f->fin = (uint8_t)fin;
	f->opcode = (uint8_t)op;
	f->payload_len = n;
}

static void
test_rx_text(void)
{
	const uint8_t *m = (const uint8_t *)mixed;
	struct ws_frame f;
	struct ws_rx rx, saved;
	size_t s, k;
	int ok;

	/* A valid message split in two at every byte. */
	for (s = 0; s <= MIXED_LEN; s++) {
		memset(&rx, 0, sizeof(rx));
		rx_frame(&f, 0, WS_OP_TEXT, s);
		CHECK_EQ(ws_rx_accept(&rx, &f, edge(m, s), s), 0);
		CHECK_EQ(rx.msg_len, s);
		rx_frame(&f, 1, WS_OP_CONT, MIXED_LEN - s);
		CHECK_EQ(ws_rx_accept(&rx, &f, edge(m + s, MIXED_LEN - s),
		    MIXED_LEN - s), 1);
	}
	/* One byte per frame, then an empty final frame. */
	memset(&rx, 0, sizeof(rx));
	ok = 1;
	for (k = 0; k < MIXED_LEN; k++) {
		rx_frame(&f, 0, k == 0 ? WS_OP_TEXT : WS_OP_CONT, 1);
		if (ws_rx_accept(&rx, &f, edge(m + k, 1), 1) != 0)
			ok = 0;
	}
	CHECK(ok);
	CHECK_EQ(rx.msg_len, MIXED_LEN);
	rx_frame(&f, 1, WS_OP_CONT, 0);
	CHECK_EQ(ws_rx_accept(&rx, &f, NULL, 0), 1);
	CHECK_EQ(rx.in_message, 0);

	/* A message may not end inside a character: whole, and at a final
	 * fragment. */
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 1, WS_OP_TEXT, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xe2\x82", 2),
	    WS_ERR_UTF8);
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 0, WS_OP_TEXT, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"a\xf0", 2), 0);
	rx_frame(&f, 1, WS_OP_CONT, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\x9d\x84", 2),
	    WS_ERR_UTF8);

	/* An invalid byte fails a non-final fragment at once. */
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 0, WS_OP_TEXT, 3);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"ab\xc0", 3),
	    WS_ERR_UTF8);
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 0, WS_OP_TEXT, 9);
	CHECK_EQ(ws_rx_accept(&rx, &f,
	    (const uint8_t *)"abc\xed\xa0\x80" "def", 9), WS_ERR_UTF8);
	/* ... and a continuation that makes the text impossible. */
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 0, WS_OP_TEXT, 1);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xf4", 1), 0);
	rx_frame(&f, 0, WS_OP_CONT, 1);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\x90", 1),
	    WS_ERR_UTF8);

	/* A ping between fragments keeps a character that is split. */
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 0, WS_OP_TEXT, 1);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xe2", 1), 0);
	saved = rx;
	rx_frame(&f, 1, WS_OP_PING, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xff\xff", 2), 1);
	CHECK_MEM(&rx, &saved, sizeof(rx));
	rx_frame(&f, 1, WS_OP_CONT, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\x82\xac", 2), 1);

	/* Binary messages are not UTF-8 checked. */
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 0, WS_OP_BINARY, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xc0\x80", 2), 0);
	CHECK_EQ(rx.msg_opcode, WS_OP_BINARY);
	rx_frame(&f, 1, WS_OP_CONT, 1);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xe2", 1), 1);

	/* A new text message after a binary one starts fresh. */
	rx_frame(&f, 1, WS_OP_TEXT, 2);
	CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xc2\xa2", 2), 1);
	CHECK_EQ(rx.in_message, 0);
	CHECK_EQ(rx.msg_opcode, 0);
	CHECK_EQ(rx.msg_len, 0);

	/* Frames out of order are refused here too. */
	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 1, WS_OP_CONT, 0);
	CHECK_EQ(ws_rx_accept(&rx, &f, NULL, 0), WS_ERR_CONT);
	rx.in_message = 1;
	rx.msg_opcode = WS_OP_TEXT;
	rx_frame(&f, 1, WS_OP_BINARY, 0);
	CHECK_EQ(ws_rx_accept(&rx, &f, NULL, 0), WS_ERR_NOT_CONT);
}

/*
 * Payloads in pieces (ws_rx_begin, ws_rx_payload). A frame header is made
 * by hand; its payload is masked with key, then handed over in pieces of
 * step bytes (the last one shorter), each placed against the guard page.
 * The unmasked pieces are appended to out, with their opcode and FIN bit
 * in ops/fins. Returns the first error, or what the last piece returned.
 */
#define PIECES_MAX 4096

struct pieces {
	uint8_t out[PIECES_MAX];
	size_t n;		/* bytes in out */
	size_t count;		/* pieces handed out */
	uint8_t ops[PIECES_MAX];
	uint8_t fins[PIECES_MAX];
	size_t err_at;		/* payload offset of the failing piece */
};

static int
feed_frame(struct ws_rx *rx, struct pieces *pc, int fin, int op,
    const uint8_t *data, size_t n, size_t step)
{
	static const uint8_t key[4] = { 0x9b, 0x01, 0xe7, 0x42 };
	static uint8_t masked[PIECES_MAX];
	struct ws_frame f;
	struct ws_piece piece;
	size_t off = 0, k;
	int r;

	rx_frame(&f, fin, op, n);
	f.masked = 1;
	memcpy(f.mask, key, 4);
	if (n > 0)
		memcpy(masked, data, n);
	ws_unmask(masked, n, key, 0);
	if ((r = ws_rx_begin(rx, &f)) < 0)
		return r;
	do {
		uint8_t *q;

		k = n - off < step ? n - off : step;
		q = edge(masked + off, k);
		piece.opcode = 0xff;
		piece.fin = 0xff;
		r = ws_rx_payload(rx, q, k, &piece);
		if (r < 0) {
			pc->err_at = off;
			CHECK_EQ(piece.opcode, 0xff);	/* not written */
			return r;
		}
		/* A frame ends with its last byte, not before. */
		CHECK_EQ(r, off + k == n);
		memcpy(pc->out + pc->n, q, k);
		pc->n += k;
		pc->ops[pc->count] = piece.opcode;
		pc->fins[pc->count] = piece.fin;
		pc->count++;
		off += k;
	} while (off < n);
	return r;
}

/* The pieces form one valid message: the opcode first, then
 * continuations, FIN on the last one only. */
static void
check_pieces(int line, const struct pieces *pc, int op, const void *data,
    size_t n)
{
	int before = check_fail;
	size_t i;

	CHECK(pc->count > 0);
	CHECK_EQ(pc->n, n);
	CHECK_MEM(pc->out, data, n);
	for (i = 0; i < pc->count; i++) {
		CHECK_EQ(pc->ops[i], i == 0 ? op : WS_OP_CONT);
		CHECK_EQ(pc->fins[i], i == pc->count - 1);
	}
	if (check_fail != before)
		fprintf(stderr, "  (pieces from line %d)\n", line);
}
#define CHECK_PIECES(pc, op, data, n) \
	check_pieces(__LINE__, pc, op, data, n)

static void
test_pieces_whole_and_bytewise(void)
{
	static struct pieces pc;
	const uint8_t *m = (const uint8_t *)mixed;
	struct ws_rx rx, saved;
	size_t s, step;

	/* One frame, whole, byte by byte, and in steps of every size. */
	for (step = 1; step <= MIXED_LEN; step++) {
		memset(&rx, 0, sizeof(rx));
		memset(&pc, 0, sizeof(pc));
		CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_TEXT, m, MIXED_LEN,
		    step), 1);
		CHECK_PIECES(&pc, WS_OP_TEXT, m, MIXED_LEN);
		CHECK_EQ(pc.count, (MIXED_LEN + step - 1) / step);
		CHECK_EQ(rx.in_message, 0);
		CHECK_EQ(rx.f_open, 0);
		CHECK_EQ(rx.msg_len, 0);
	}
	/* The message in two frames cut at every byte, each frame whole
	 * and byte by byte: the same pieces as the bytes go. */
	for (s = 0; s <= MIXED_LEN; s++) {
		for (step = 1; step <= MIXED_LEN; step += MIXED_LEN - 1) {
			memset(&rx, 0, sizeof(rx));
			memset(&pc, 0, sizeof(pc));
			CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_TEXT, m, s,
			    step), 1);
			CHECK_EQ(rx.in_message, 1);
			CHECK_EQ(rx.msg_len, s);
			CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_CONT, m + s,
			    MIXED_LEN - s, step), 1);
			CHECK_PIECES(&pc, WS_OP_TEXT, m, MIXED_LEN);
			CHECK_EQ(rx.in_message, 0);
		}
	}
	/* Empty frames: alone, first, in the middle and last. */
	memset(&rx, 0, sizeof(rx));
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_BINARY, NULL, 0, 1), 1);
	CHECK_PIECES(&pc, WS_OP_BINARY, "", 0);
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_TEXT, NULL, 0, 1), 1);
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_CONT, m, 3, 2), 1);
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_CONT, NULL, 0, 1), 1);
	CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_CONT, NULL, 0, 1), 1);
	CHECK_PIECES(&pc, WS_OP_TEXT, m, 3);
	CHECK_EQ(pc.count, 5);

	/* A control frame between frames leaves the message alone, and a
	 * character split around it is completed after it. */
	memset(&rx, 0, sizeof(rx));
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_TEXT, m, 4, 1), 1);
	saved = rx;
	{
		struct ws_frame f;
		rx_frame(&f, 1, WS_OP_PING, 2);
		CHECK_EQ(ws_rx_accept(&rx, &f, (const uint8_t *)"\xff\xff",
		    2), 1);
		CHECK_MEM(&rx, &saved, sizeof(rx));
		/* ... and is never taken in pieces. */
		CHECK_EQ(ws_rx_begin(&rx, &f), WS_ERR_OPCODE);
		CHECK_MEM(&rx, &saved, sizeof(rx));
	}
	CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_CONT, m + 4, MIXED_LEN - 4,
	    1), 1);
	CHECK_PIECES(&pc, WS_OP_TEXT, m, MIXED_LEN);

	/* Binary payloads are not UTF-8 checked, in pieces either. */
	memset(&rx, 0, sizeof(rx));
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_BINARY,
	    (const uint8_t *)"\xc0\x80\xff", 3, 1), 1);
	CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_CONT,
	    (const uint8_t *)"\xe2", 1, 1), 1);
	CHECK_PIECES(&pc, WS_OP_BINARY, "\xc0\x80\xff\xe2", 4);
	/* A text message after it starts with a fresh UTF-8 state. */
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_TEXT,
	    (const uint8_t *)"\xc2\xa2", 2, 1), 1);
	CHECK_PIECES(&pc, WS_OP_TEXT, "\xc2\xa2", 2);
}

/* The pieces agree with ws_rx_accept() on whole frames. */
static void
test_pieces_agree_with_accept(void)
{
	static struct pieces pc;
	static const char *const texts[] = {
		"Hello", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
		"\xed\xa0\x80", "\xf4\x90\x80\x80", "ok\xe2\x82", "\xc0\xaf",
		"a\xf0\x9f\x98", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
	};
	struct ws_frame f;
	struct ws_rx a, b;
	uint8_t buf[32];
	size_t i, n, step;
	int ra, rb;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		n = strlen(texts[i]);
		for (step = 1; step <= n; step++) {
			memset(&a, 0, sizeof(a));
			memset(&b, 0, sizeof(b));
			memset(&pc, 0, sizeof(pc));
			memcpy(buf, texts[i], n);
			rx_frame(&f, 1, WS_OP_TEXT, n);
			ra = ws_rx_accept(&a, &f, buf, n);
			rb = feed_frame(&b, &pc, 1, WS_OP_TEXT,
			    (const uint8_t *)texts[i], n, step);
			CHECK_EQ(ra, rb);
			if (ra == 1)
				CHECK_PIECES(&pc, WS_OP_TEXT, texts[i], n);
		}
	}
}

/* A bad byte fails the piece that holds it: the bytes before it pass,
 * whatever the cut, and nothing after the error does. */
static void
test_pieces_utf8_fail_fast(void)
{
	static struct pieces pc;
	static uint8_t big[PIECES_MAX];
	static const size_t at[] = { 0, 1, 2000, PIECES_MAX - 2,
	    PIECES_MAX - 1 };
	struct ws_piece piece;
	struct ws_rx rx;
	size_t i, step;
	uint8_t b = 'x';

	for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		for (step = 1; step <= PIECES_MAX; step *= 8) {
			memset(big, 'a', sizeof(big));
			big[at[i]] = 0xff;
			memset(&rx, 0, sizeof(rx));
			memset(&pc, 0, sizeof(pc));
			CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_TEXT, big,
			    sizeof(big), step), WS_ERR_UTF8);
			CHECK_EQ(pc.err_at, at[i] / step * step);
			CHECK_EQ(pc.n, at[i] / step * step);
			/* The frame is closed: no later piece is taken. */
			CHECK_EQ(ws_rx_payload(&rx, &b, 1, &piece),
			    WS_ERR_CONT);
		}
	}
	/* A bad byte in a continuation fails that continuation. */
	memset(&rx, 0, sizeof(rx));
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_TEXT,
	    (const uint8_t *)"abc", 3, 1), 1);
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_CONT,
	    (const uint8_t *)"d\xed\xa0", 3, 1), WS_ERR_UTF8);
	CHECK_EQ(pc.err_at, 2);
	CHECK_EQ(pc.n, 5);	/* "abc", then "d" and the lead byte ED */
	/* A message may not end inside a character: the last piece fails,
	 * while a non-final frame may end inside one. */
	memset(&rx, 0, sizeof(rx));
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 0, WS_OP_TEXT,
	    (const uint8_t *)"a\xe2\x82", 3, 1), 1);
	CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_CONT,
	    (const uint8_t *)"\xac\xe2\x82", 3, 1), WS_ERR_UTF8);
	CHECK_EQ(pc.err_at, 2);
	memset(&rx, 0, sizeof(rx));
	memset(&pc, 0, sizeof(pc));
	CHECK_EQ(feed_frame(&rx, &pc, 1, WS_OP_TEXT,
	    (const uint8_t *)"\xe2\x82", 2, 2), WS_ERR_UTF8);
	CHECK_EQ(pc.n, 0);
}

/* Order and misuse: what ws_rx_accept() refuses, and calls out of
 * turn, change nothing. */
static void
test_pieces_order(void)
{
	struct ws_frame f;
	struct ws_piece piece;
	struct ws_rx rx, saved;
	uint8_t b[4] = { 1, 2, 3, 4 };

	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 1, WS_OP_CONT, 1);
	CHECK_EQ(ws_rx_begin(&rx, &f), WS_ERR_CONT);
	CHECK_EQ(ws_rx_payload(&rx, b, 1, &piece), WS_ERR_CONT);
	rx_frame(&f, 0, WS_OP_BINARY, 4);
	CHECK_EQ(ws_rx_begin(&rx, &f), 0);
	CHECK_EQ(rx.f_open, 1);
	CHECK_EQ(rx.f_left, 4);
	/* No second frame while one is open, and no piece past its end. */
	saved = rx;
	CHECK_EQ(ws_rx_begin(&rx, &f), WS_ERR_NOT_CONT);
	CHECK_EQ(ws_rx_payload(&rx, b, 5, &piece), WS_ERR_CONT);
	CHECK_MEM(&rx, &saved, sizeof(rx));
	CHECK_EQ(ws_rx_payload(&rx, b, 4, &piece), 1);
	CHECK_EQ(piece.opcode, WS_OP_BINARY);
	CHECK_EQ(piece.fin, 0);
	/* The message is open: a new one is refused, by the header parser
	 * as well, and a continuation taken. */
	rx_frame(&f, 1, WS_OP_TEXT, 0);
	CHECK_EQ(ws_rx_begin(&rx, &f), WS_ERR_NOT_CONT);
	{
		static const uint8_t h[] = { 0x81, 0x80, 1, 2, 3, 4 };
		static const uint8_t c[] = { 0x80, 0x80, 1, 2, 3, 4 };
		struct ws_frame g;

		ERR_AT(h, 1, WS_ERR_NOT_CONT, 1, &rx, MAX_ANY);
		PREFIXES(&g, c, sizeof(c), 6, 1, &rx, MAX_ANY);
		CHECK_EQ(ws_rx_begin(&rx, &g), 0);
		CHECK_EQ(ws_rx_payload(&rx, NULL, 0, &piece), 1);
		CHECK_EQ(piece.opcode, WS_OP_CONT);
		CHECK_EQ(piece.fin, 1);
		CHECK_EQ(rx.in_message, 0);
		ERR_AT(c, 1, WS_ERR_CONT, 1, &rx, MAX_ANY);
	}
}

/* A frame far larger than any buffer, taken a slice at a time: the
 * state counts down without holding anything, and the mask key stays in
 * phase across pieces of odd sizes. */
static void
test_pieces_huge_frame(void)
{
	static const uint8_t key[4] = { 0x11, 0x22, 0x44, 0x88 };
	static uint8_t p[4099];
	struct ws_frame f;
	struct ws_piece piece;
	struct ws_rx rx;
	uint64_t len = (uint64_t)1 << 40, k;
	size_t i;
	int ok = 1;

	memset(&rx, 0, sizeof(rx));
	rx_frame(&f, 1, WS_OP_BINARY, 0);
	f.payload_len = len;
	f.masked = 1;
	memcpy(f.mask, key, 4);
	CHECK_EQ(ws_rx_begin(&rx, &f), 0);
	for (k = 0; k < 1000; k++) {
		memset(p, 0, sizeof(p));
		ws_unmask(p, sizeof(p), key, (k * sizeof(p)) & 3u);
		/* Unmasked in place by the codec: zeros again. */
		if (ws_rx_payload(&rx, p, sizeof(p), &piece) != 0)
			ok = 0;
		for (i = 0; i < sizeof(p); i++)
			if (p[i] != 0)
				ok = 0;
		if (piece.opcode != (k == 0 ? WS_OP_BINARY : WS_OP_CONT) ||
		    piece.fin)
			ok = 0;
	}
	CHECK(ok);
	CHECK_EQ(rx.f_left, len - 1000 * sizeof(p));
	CHECK_EQ(rx.msg_len, 1000 * sizeof(p));
	CHECK_EQ(rx.in_message, 1);
}

/* RFC 6455 5.5.1, 7.4: close payloads. */
static void
test_close(void)
{
	static const uint32_t good[] = { 1000, 1001, 1002, 1003, 1007, 1008,
	    1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4001, 4999 };
	static const uint32_t bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015,
	    1016, 1100, 2000, 2999, 5000, 65535 };
	uint8_t b[WS_MAX_CONTROL + 1];
	uint16_t code;
	size_t i;

	code = 0;
	CHECK_EQ(ws_close_parse(edge(b, 0), 0, &code), 0);
	CHECK_EQ(code, WS_CLOSE_NO_STATUS);
	b[0] = 0x03;
	CHECK_EQ(ws_close_parse(edge(b, 1), 1, &code), WS_ERR_CLOSE_LEN);

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(ws_close_code_valid(good[i]));
		b[0] = (uint8_t)(good[i] >> 8);
		b[1] = (uint8_t)good[i];
		code = 0;
		CHECK_EQ(ws_close_parse(edge(b, 2), 2, &code), 0);
		CHECK_EQ(code, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!ws_close_code_valid(bad[i]));
		b[0] = (uint8_t)(bad[i] >> 8);
		b[1] = (uint8_t)bad[i];
		CHECK_EQ(ws_close_parse(edge(b, 2), 2, &code),
		    WS_ERR_CLOSE_CODE);
	}
	CHECK(!ws_close_code_valid(65536 + 1000));

	/* Reasons: ASCII, multi-byte, then invalid and truncated. */
	memcpy(b, "\x03\xe8" "bye", 5);
	CHECK_EQ(ws_close_parse(edge(b, 5), 5, &code), 0);
	CHECK_EQ(code, 1000);
	memcpy(b, "\x0f\xa1" "\xe5\x86\x8d\xe8\xa7\x81", 8);
	CHECK_EQ(ws_close_parse(edge(b, 8), 8, &code), 0);
	CHECK_EQ(code, 4001);
	memcpy(b, "\x03\xe8" "\xc0\x80", 4);
	CHECK_EQ(ws_close_parse(edge(b, 4), 4, &code), WS_ERR_UTF8);
	memcpy(b, "\x03\xe8" "ok\xe2\x82", 6);
	CHECK_EQ(ws_close_parse(edge(b, 6), 6, &code), WS_ERR_UTF8);
	/* A bad code is reported before a bad reason. */
	memcpy(b, "\x03\xed" "\xc0\x80", 4);
	CHECK_EQ(ws_close_parse(edge(b, 4), 4, &code), WS_ERR_CLOSE_CODE);

	/* The longest control payload, and one byte more. */
	memset(b, 'r', sizeof(b));
	b[0] = 0x03;
	b[1] = 0xe9;
	CHECK_EQ(ws_close_parse(edge(b, WS_MAX_CONTROL), WS_MAX_CONTROL,
	    &code), 0);
	CHECK_EQ(code, 1001);
	CHECK_EQ(ws_close_parse(edge(b, sizeof(b)), sizeof(b), &code),
	    WS_ERR_CTL_LEN);
}

/* One close code per error. */
static void
test_err_close_code(void)
{
	CHECK_EQ(ws_err_close_code(WS_ERR_UTF8), 1007);
	CHECK_EQ(ws_err_close_code(WS_ERR_TOO_BIG), 1009);
	CHECK_EQ(ws_err_close_code(WS_ERR_RSV), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_OPCODE), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_UNMASKED), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_CTL_FRAG), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_CTL_LEN), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_LEN_ENC), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_CONT), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_NOT_CONT), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_CLOSE_LEN), 1002);
	CHECK_EQ(ws_err_close_code(WS_ERR_CLOSE_CODE), 1002);
}

/* RFC 6455 4.1: a key is base64 of exactly 16 bytes. */
static void
test_key_valid(void)
{
	static const char *const good[] = {
		"dGhlIHNhbXBsZSBub25jZQ==",
		"x3JJHMbDL1EzLkh9GBhXDw==",
		"AAAAAAAAAAAAAAAAAAAAAA==",
		"+/+/+/+/+/+/+/+/+/+/+w==",
		"0123456789abcdefghijkg==",
	};
	static const char *const bad[] = {
		"",
		"dGhlIHNhbXBsZSBub25jZQ=",	/* 23 */
		"dGhlIHNhbXBsZSBub25jZQ===",	/* 25 */
		"dGhlIHNhbXBsZSBub25jZQ= ",
		"dGhlIHNhbXBsZSBub25jZQA=",	/* 17 bytes, one pad */
		"dGhlIHNhbXBsZSBub25jZQAA",	/* 18 bytes, no pad */
		"dGhlIHNhbXBsZSBub25jZR==",	/* low bits set */
		"dGhlIHNhbXBsZSBub25jZ/==",
		"dGhlIHNhbXBsZSBub25jZ===",
		"dGhlIHNhbXBsZSBub25j-Q==",	/* URL-safe alphabet */
		"dGhlIHNhbXBsZSBub25j_Q==",
		"dGhlIHNhbXBs ZSBub25jQ==",
		"=GhlIHNhbXBsZSBub25jZQ==",
		"dGhlIHNhbXBsZSBub25jZQ\x00\x00",
	};
	size_t i, n;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(ws_key_valid((const char *)edge(good[i], 24), 24));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = strlen(bad[i]);
		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			n = 24;		/* embedded NULs */
		CHECK(!ws_key_valid((const char *)edge(bad[i], n), n));
	}
}

int
main(void)
{
	edge_init();
	test_accept_key();
	test_rfc_unmasked_text();
	test_rfc_masked_text();
	test_rfc_fragmented();
	test_rfc_ping_pong();
	test_rfc_long_binary();
	test_unmask_pieces();
	test_rsv();
	test_opcode();
	test_control();
	test_len_enc();
	test_fragment_order();
	test_too_big();
	test_no_partial_write();
	test_header_build();
	test_utf8_valid();
	test_utf8_invalid();
	test_utf8_truncated();
	test_utf8_split();
	test_rx_text();
	test_pieces_whole_and_bytewise();
	test_pieces_agree_with_accept();
	test_pieces_utf8_fail_fast();
	test_pieces_order();
	test_pieces_huge_frame();
	test_close();
	test_err_close_code();
	test_key_valid();
	CHECK_MAIN();
}
