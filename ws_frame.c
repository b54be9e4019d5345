/*
 * ws_frame.c: the RFC 6455 codec. It parses frame headers, tracks the
 * fragmentation and UTF-8 state of a connection's incoming messages
 * (whole frames, or a payload in pieces as it arrives), unmasks payloads
 * in place, builds server frame headers, checks close
 * payloads and computes the handshake's accept key. It never makes a
 * system call, keeps no global state (only const tables), logs nothing
 * and allocates nothing: every byte it reads or writes is in memory the
 * caller handed in with its length.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <bearssl.h>

#include "ws_frame.h"

/* RFC 6455 1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
#define WS_GUID_LEN (sizeof(ws_guid) - 1)

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Bits of the first two header bytes (RFC 6455 5.2). */
#define B0_FIN 0x80u
#define B0_RSV 0x70u
#define B0_OPCODE 0x0Fu
#define B1_MASK 0x80u
#define B1_LEN 0x7Fu
#define LEN_16 126u		/* a 16-bit length follows */
#define LEN_64 127u		/* a 64-bit length follows */

/* Whether op is one of the six opcodes RFC 6455 5.2 defines. */
static int
opcode_known(unsigned int op)
{
	switch (op) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		return 1;
	default:
		return 0;
	}
}

/*
 * Checks that need only the first byte: the reserved bits, the opcode,
 * fragmentation of control frames, and (with rx) whether a continuation
 * or a new data frame fits the message in progress. They come first so
 * that a bad frame is refused as soon as its first byte is in, whatever
 * follows it.
 */
static int
check_byte0(uint8_t b0, const struct ws_rx *rx)
{
	unsigned int op = b0 & B0_OPCODE;

	/* RFC 6455 5.2: RSV1-3 MUST be 0 unless an extension defines them;
	 * vkws negotiates no extension. */
	if ((b0 & B0_RSV) != 0)
		return WS_ERR_RSV;
	/* RFC 6455 5.2: a receiver MUST fail the connection on an opcode
	 * it does not know. */
	if (!opcode_known(op))
		return WS_ERR_OPCODE;
	if ((op & 0x8u) != 0) {
		/* RFC 6455 5.5: control frames MUST NOT be fragmented. */
		if ((b0 & B0_FIN) == 0)
			return WS_ERR_CTL_FRAG;
		return 0;
	}
	if (rx == NULL)
		return 0;
	/* RFC 6455 5.4: a continuation belongs to a started message, and
	 * the fragments of one message MUST NOT be interleaved with
	 * another data message. */
	if (op == WS_OP_CONT && !rx->in_message)
		return WS_ERR_CONT;
	if (op != WS_OP_CONT && rx->in_message)
		return WS_ERR_NOT_CONT;
	return 0;
}

/*
 * Decode the payload length that starts in byte 1. Returns the number of
 * header bytes up to the end of the length field, 0 if they are not all
 * in yet, or WS_ERR_LEN_ENC.
 */
static int
parse_len(const uint8_t *p, size_t len, uint64_t *plen)
{
	unsigned int len7 = p[1] & B1_LEN;
	uint64_t v;
	size_t i;

	if (len7 < LEN_16) {
		*plen = len7;
		return 2;
	}
	if (len7 == LEN_16) {
		if (len < 4)
			return 0;
		v = (uint64_t)p[2] << 8 | p[3];
		/* RFC 6455 5.2: the minimal number of bytes MUST be used. */
		if (v < LEN_16)
			return WS_ERR_LEN_ENC;
		*plen = v;
		return 4;
	}
	/* RFC 6455 5.2: the most significant bit of a 64-bit length MUST be
	 * 0. It is in byte 2, so it is checked as soon as that byte is. */
	if (len < 3)
		return 0;
	if ((p[2] & 0x80u) != 0)
		return WS_ERR_LEN_ENC;
	if (len < 10)
		return 0;
	v = 0;
	for (i = 2; i < 10; i++)
		v = v << 8 | p[i];
	/* RFC 6455 5.2: the minimal number of bytes MUST be used. */
	if (v <= 0xFFFFu)
		return WS_ERR_LEN_ENC;
	*plen = v;
	return 10;
}

/*
 * The header is re-parsed from its first byte on every call, so the
 * caller needs to keep no parser state: it calls again when more bytes
 * have arrived. Errors are reported in the order the bytes that reveal
 * them arrive: byte 0 (RSV, opcode, control FIN, fragmentation order),
 * then byte 1 (mask bit, control length), then the extended length
 * (encoding, message size). No error depends on the mask key, so a frame
 * is refused before its key is in. With need_mask 0 a masked frame is
 * accepted too and its key returned. *f is written only on success.
 */
int
ws_frame_parse(struct ws_frame *f, const uint8_t *p, size_t len,
    int need_mask, const struct ws_rx *rx, uint64_t max_msg)
{
	uint64_t plen = 0, before;
	unsigned int op;
	size_t need;
	int ctl, r;

	if (len < 1)
		return 0;
	if ((r = check_byte0(p[0], rx)) < 0)
		return r;
	op = p[0] & B0_OPCODE;
	ctl = (op & 0x8u) != 0;

	if (len < 2)
		return 0;
	/* RFC 6455 5.1: a server MUST close the connection on a frame from
	 * a client that is not masked. */
	if (need_mask && (p[1] & B1_MASK) == 0)
		return WS_ERR_UNMASKED;
	/* RFC 6455 5.5: control payloads are at most 125 bytes, so a
	 * control frame with an extended length is refused at byte 1. */
	if (ctl && (p[1] & B1_LEN) > WS_MAX_CONTROL)
		return WS_ERR_CTL_LEN;

	if ((r = parse_len(p, len, &plen)) <= 0)
		return r;
	need = (size_t)r;

	/* The limit is on the whole message: a continuation adds to what
	 * the message already holds. The sum is compared without adding so
	 * that a huge length cannot wrap around. */
	if (!ctl) {
		before = (rx != NULL && op == WS_OP_CONT) ? rx->msg_len : 0;
		if (plen > max_msg || before > max_msg - plen)
			return WS_ERR_TOO_BIG;
	}

	if ((p[1] & B1_MASK) != 0)
		need += 4;
	if (len < need)
		return 0;

	f->fin = (p[0] & B0_FIN) != 0;
	f->opcode = (uint8_t)op;
	f->masked = (p[1] & B1_MASK) != 0;
	if (f->masked) {
		f->mask[0] = p[need - 4];
		f->mask[1] = p[need - 3];
		f->mask[2] = p[need - 2];
		f->mask[3] = p[need - 1];
	} else {
		f->mask[0] = f->mask[1] = f->mask[2] = f->mask[3] = 0;
	}
	f->hdr_len = need;
	f->payload_len = plen;
	return (int)need;
}

/*
 * A caller that parsed without rx may hand in a frame that does not fit
 * the message state; it gets the error ws_frame_parse() would have given
 * instead of corrupted state. After an error rx holds nothing worth
 * keeping: the connection is to be failed, and the UTF-8 state stays
 * rejected so a later call fails too.
 */
int
ws_rx_accept(struct ws_rx *rx, const struct ws_frame *f,
    const uint8_t *p, size_t n)
{
	if ((f->opcode & 0x8u) != 0)
		return 1;
	if (f->opcode == WS_OP_CONT && !rx->in_message)
		return WS_ERR_CONT;
	if (f->opcode != WS_OP_CONT && rx->in_message)
		return WS_ERR_NOT_CONT;

	if (f->opcode != WS_OP_CONT) {
		rx->msg_opcode = f->opcode;
		rx->utf8 = WS_UTF8_ACCEPT;
		rx->msg_len = 0;
	}
	/* RFC 6455 8.1: invalid UTF-8 in a text message fails the
	 * connection; it is reported at the first bad byte, not at the end
	 * of the message. */
	if (rx->msg_opcode == WS_OP_TEXT) {
		if (ws_utf8_feed(&rx->utf8, p, n) < 0)
			return WS_ERR_UTF8;
		/* A message may not end inside a code point. */
		if (f->fin && !ws_utf8_complete(rx->utf8))
			return WS_ERR_UTF8;
	}
	if (f->fin) {
		rx->in_message = 0;
		rx->msg_opcode = 0;
		rx->utf8 = WS_UTF8_ACCEPT;
		rx->msg_len = 0;
		return 1;
	}
	rx->in_message = 1;
	rx->msg_len += n;
	return 0;
}

/*
 * The state of a message runs across pieces exactly as across whole
 * frames in ws_rx_accept(): the fragmentation order, then the message's
 * opcode and UTF-8 state. f_first says whether a piece of this message
 * has been handed out, so the first one carries the opcode and the rest
 * are continuations, whatever the frames were cut into.
 */
int
ws_rx_begin(struct ws_rx *rx, const struct ws_frame *f)
{
	if ((f->opcode & 0x8u) != 0)
		return WS_ERR_OPCODE;
	if (rx->f_open)
		return WS_ERR_NOT_CONT;
	/* RFC 6455 5.4: a continuation belongs to a started message, and a
	 * new message may not start inside another. */
	if (f->opcode == WS_OP_CONT && !rx->in_message)
		return WS_ERR_CONT;
	if (f->opcode != WS_OP_CONT && rx->in_message)
		return WS_ERR_NOT_CONT;
	if (f->opcode != WS_OP_CONT) {
		rx->msg_opcode = f->opcode;
		rx->utf8 = WS_UTF8_ACCEPT;
		rx->msg_len = 0;
		rx->f_first = 1;
	}
	rx->in_message = 1;
	rx->f_open = 1;
	rx->f_fin = f->fin;
	rx->f_left = f->payload_len;
	memcpy(rx->f_mask, f->mask, sizeof(rx->f_mask));
	rx->f_phase = 0;
	return 0;
}

/*
 * The mask position is kept modulo 4, all the key needs. After an error
 * the frame is closed, so every later piece fails too: the connection is
 * to be failed.
 */
int
ws_rx_payload(struct ws_rx *rx, uint8_t *p, size_t n, struct ws_piece *out)
{
	int end;

	if (!rx->f_open || n > rx->f_left)
		return WS_ERR_CONT;
	ws_unmask(p, n, rx->f_mask, rx->f_phase);
	rx->f_phase = (uint8_t)((rx->f_phase + n) & 3u);
	rx->f_left -= n;
	end = rx->f_left == 0;
	/* RFC 6455 8.1: invalid UTF-8 in a text message fails the
	 * connection: checked in every piece as it comes, so the error is
	 * known before the rest of the frame is sent. A message may not end
	 * inside a code point. */
	if (rx->msg_opcode == WS_OP_TEXT &&
	    (ws_utf8_feed(&rx->utf8, p, n) < 0 ||
	    (end && rx->f_fin && !ws_utf8_complete(rx->utf8)))) {
		rx->f_open = 0;
		rx->f_left = 0;
		return WS_ERR_UTF8;
	}
	out->opcode = rx->f_first ? rx->msg_opcode : (uint8_t)WS_OP_CONT;
	out->fin = (uint8_t)(end && rx->f_fin);
	rx->f_first = 0;
	rx->msg_len += n;
	if (!end)
		return 0;
	rx->f_open = 0;
	if (rx->f_fin) {
		rx->in_message = 0;
		rx->msg_opcode = 0;
		rx->utf8 = WS_UTF8_ACCEPT;
		rx->msg_len = 0;
	}
	return 1;
}

/*
 * RFC 6455 5.3: byte i of the payload is XORed with key byte i mod 4.
 * The key is rotated once by the offset so the loop needs no addition.
 */
void
ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
	uint8_t k[8];
	uint64_t k8, w;
	size_t i;

	for (i = 0; i < 8; i++)
		k[i] = mask[(off + i) & 3u];
	/* Eight bytes at a time: the key repeats every four, so an 8-byte
	 * word of it lines up at every multiple of 8. memcpy keeps the
	 * loads legal at any alignment. */
	memcpy(&k8, k, 8);
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= k8;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= k[i & 3u];
}

/*
 * RFC 6455 5.2: the shortest length form is used, since a peer MUST
 * refuse the others. len must be below 2^63.
 */
size_t
ws_header_build(uint8_t *out, int fin, int opcode, uint64_t len)
{
	size_t i;

	out[0] = (uint8_t)((fin ? B0_FIN : 0u) | ((unsigned int)opcode &
	    B0_OPCODE));
	if (len <= WS_MAX_CONTROL) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xFFFFu) {
		out[1] = LEN_16;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = LEN_64;
	for (i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

/*
 * UTF-8 state machine. A state says what the next byte must be:
 *
 *	U_ACCEPT	a lead byte: the text so far ends on a code point
 *	U_CONT1		80..BF, the last byte of a sequence
 *	U_CONT2		80..BF, then one more
 *	U_CONT3		80..BF, then two more
 *	U_E0		A0..BF after E0: shorter forms are overlong
 *	U_ED		80..9F after ED: A0..BF would be a surrogate
 *	U_F0		90..BF after F0: shorter forms are overlong
 *	U_F4		80..8F after F4: more is above U+10FFFF
 *	U_REJECT	nothing: an invalid byte was seen
 *
 * Lead bytes (RFC 3629 4): 00..7F stand alone; C2..DF, E0..EF, F0..F4
 * start sequences of 2, 3 and 4 bytes; 80..BF cannot start one, and C0,
 * C1 and F5..FF occur in no valid text (C0, C1: overlong; F5..FF: above
 * U+10FFFF). The reject state is sticky, so a caller that ignores one
 * error still gets the next.
 */
enum {
	U_ACCEPT = WS_UTF8_ACCEPT,
	U_CONT1, U_CONT2, U_CONT3, U_E0, U_ED, U_F0, U_F4,
	U_REJECT
};

/* For each continuation state: the range of the next byte, and the
 * state after it. */
static const struct {
	uint8_t lo, hi, next;
} utf8_cont[U_REJECT] = {
	[U_CONT1] = { 0x80, 0xBF, U_ACCEPT },
	[U_CONT2] = { 0x80, 0xBF, U_CONT1 },
	[U_CONT3] = { 0x80, 0xBF, U_CONT2 },
	[U_E0] = { 0xA0, 0xBF, U_CONT1 },
	[U_ED] = { 0x80, 0x9F, U_CONT1 },
	[U_F0] = { 0x90, 0xBF, U_CONT2 },
	[U_F4] = { 0x80, 0x8F, U_CONT2 },
};

/* The state after lead byte c, U_REJECT if c cannot start a character. */
static uint32_t
utf8_lead(uint8_t c)
{
	if (c < 0x80)
		return U_ACCEPT;
	if (c < 0xC2)
		return U_REJECT;
	if (c < 0xE0)
		return U_CONT1;
	if (c == 0xE0)
		return U_E0;
	if (c == 0xED)
		return U_ED;
	if (c < 0xF0)
		return U_CONT2;
	if (c == 0xF0)
		return U_F0;
	if (c < 0xF4)
		return U_CONT3;
	if (c == 0xF4)
		return U_F4;
	return U_REJECT;
}

int
ws_utf8_feed(uint32_t *state, const uint8_t *p, size_t n)
{
	uint32_t s = *state;
	size_t i;

	for (i = 0; i < n; i++) {
		/* ASCII fast path: eight bytes with no high bit set, between
		 * whole code points, need no state change. */
		if (s == U_ACCEPT) {
			uint64_t w;
			while (i + 8 <= n) {
				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ULL)
					break;
				i += 8;
			}
			if (i == n)
				break;
			s = utf8_lead(p[i]);
		} else if (s < U_REJECT && p[i] >= utf8_cont[s].lo &&
		    p[i] <= utf8_cont[s].hi)
			s = utf8_cont[s].next;
		else
			s = U_REJECT;
		if (s == U_REJECT)
			break;
	}
	/* An unknown state (never produced here) is treated as failed. */
	if (s > U_REJECT)
		s = U_REJECT;
	*state = s;
	return s == U_REJECT ? WS_ERR_UTF8 : 0;
}

int
ws_utf8_complete(uint32_t state)
{
	return state == U_ACCEPT;
}

/*
 * RFC 6455 5.5.1: a close body is empty, or a 2-byte code in network
 * order followed by a UTF-8 reason. Once the length is right, *code is
 * set to the code sent, valid or not, so the caller can log it.
 */
int
ws_close_parse(const uint8_t *p, size_t n, uint16_t *code)
{
	uint32_t st = WS_UTF8_ACCEPT;

	if (n == 0) {
		*code = WS_CLOSE_NO_STATUS;
		return 0;
	}
	if (n == 1)
		return WS_ERR_CLOSE_LEN;
	/* RFC 6455 5.5: a control payload is at most 125 bytes. */
	if (n > WS_MAX_CONTROL)
		return WS_ERR_CTL_LEN;
	*code = (uint16_t)(p[0] << 8 | p[1]);
	if (!ws_close_code_valid(*code))
		return WS_ERR_CLOSE_CODE;
	/* RFC 6455 5.5.1: the reason is UTF-8; 8.1: invalid UTF-8 fails
	 * the connection. */
	if (ws_utf8_feed(&st, p + 2, n - 2) < 0 || !ws_utf8_complete(st))
		return WS_ERR_UTF8;
	return 0;
}

/*
 * RFC 6455 7.4.1 defines 1000-1003 and 1007-1011 for the wire; 1004 is
 * reserved and 1005, 1006 and 1015 MUST NOT be sent. 1012-1014 were
 * registered later (IANA WebSocket Close Code Number Registry) and are
 * sent by common servers. 7.4.2: 3000-3999 are registered with IANA,
 * 4000-4999 are private; everything else is reserved.
 */
int
ws_close_code_valid(uint32_t code)
{
	if (code >= 1000 && code <= 1003)
		return 1;
	if (code >= 1007 && code <= 1014)
		return 1;
	if (code >= 3000 && code <= 4999)
		return 1;
	return 0;
}

/* RFC 6455 7.4.1: 1007 for data that does not fit its type, 1009 for a
 * message too big to process, 1002 for every other protocol error. */
uint16_t
ws_err_close_code(int err)
{
	switch (err) {
	case WS_ERR_UTF8:
		return WS_CLOSE_BAD_DATA;
	case WS_ERR_TOO_BIG:
		return WS_CLOSE_TOO_BIG;
	default:
		return WS_CLOSE_PROTOCOL;
	}
}

/*
 * Base64 (RFC 4648 4) of in[0..n) into out, with '=' padding. out must
 * hold 4 * ((n + 2) / 3) bytes; returns how many were written.
 */
static size_t
b64_encode(char *out, const uint8_t *in, size_t n)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63u];
		out[o++] = b64_alphabet[(v >> 6) & 63u];
		out[o++] = b64_alphabet[v & 63u];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63u];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63u];
		out[o++] = b64_alphabet[(v >> 6) & 63u];
		out[o++] = '=';
	}
	return o;
}

/* The value of a base64 digit, or -1 for any other byte. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* RFC 6455 4.2.2 step 5.4: base64 of the SHA-1 of the key, as sent, with
 * the GUID appended. */
void
ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN])
{
	br_sha1_context sc;
	uint8_t hash[br_sha1_SIZE];

	_Static_assert(4 * ((br_sha1_SIZE + 2) / 3) == WS_ACCEPT_LEN,
	    "the accept key is base64 of a SHA-1 hash");
	br_sha1_init(&sc);
	br_sha1_update(&sc, key, key_len);
	br_sha1_update(&sc, ws_guid, WS_GUID_LEN);
	br_sha1_out(&sc, hash);
	(void)b64_encode(out, hash, sizeof(hash));
}

/*
 * RFC 6455 4.1: the key is base64 of 16 random bytes, so 24 characters:
 * 21 whole digits, one digit of which only the top 2 bits are data (its
 * low 4 bits MUST be zero for the encoding to be canonical), and "==".
 * 4.2.1 asks the server to check it when it decodes to 16 bytes.
 */
int
ws_key_valid(const char *key, size_t key_len)
{
	size_t i;
	int v;

	if (key_len != 24)
		return 0;
	for (i = 0; i < 22; i++)
		if (b64_value((unsigned char)key[i]) < 0)
			return 0;
	v = b64_value((unsigned char)key[21]);
	if ((v & 0x0F) != 0)
		return 0;
	return key[22] == '=' && key[23] == '=';
}
