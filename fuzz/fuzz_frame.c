/*
 * fuzz_frame.c: the RFC 6455 receive path as the server runs it. Byte 0
 * of the input picks the message limit and whether masking is required;
 * the rest is a stream of client frames, parsed with ws_frame_parse(),
 * unmasked in two pieces with ws_unmask(), then handed to ws_rx_accept()
 * (and ws_close_parse() for close frames) until an error or the end.
 * Properties: a header is never longer than the input or than
 * WS_MAX_HEADER; an accepted frame obeys the RFC (control frames final
 * and at most 125 bytes, masked when a mask is required, a data message
 * never past the limit); every error maps to a close code the server may
 * send; unmasking in pieces equals unmasking whole; ws_header_build()
 * output parses back to the same header; a data frame taken in pieces
 * of sizes the input picks (ws_rx_begin, ws_rx_payload) gives the same
 * verdict, the same unmasked bytes and the same message state as the
 * frame taken whole, and its pieces form a valid fragmentation of the
 * message (RFC 6455 5.4).
 */
#include <string.h>

#include "fuzz.h"
#include "ws_frame.h"

static uint8_t buf[FUZZ_MAX_INPUT];
static uint8_t whole[FUZZ_MAX_INPUT];
static uint8_t pieces[FUZZ_MAX_INPUT];

static void
check_err(int r)
{
	uint16_t code = ws_err_close_code(r);

	FUZZ_CHECK(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_BAD_DATA ||
	    code == WS_CLOSE_TOO_BIG);
}

/* The header the server would send for this frame parses back whole. */
static void
check_build(const struct ws_frame *f)
{
	uint8_t h[WS_MAX_HEADER];
	struct ws_frame g;
	size_t n = ws_header_build(h, f->fin, f->opcode, f->payload_len);
	int r;

	FUZZ_CHECK(n >= 2 && n <= WS_MAX_HEADER - 4);
	r = ws_frame_parse(&g, h, n, 0, NULL, UINT64_MAX >> 1);
	FUZZ_CHECK(r == (int)n);
	FUZZ_CHECK(g.fin == f->fin && g.opcode == f->opcode);
	FUZZ_CHECK(g.payload_len == f->payload_len && !g.masked);
}

/*
 * The same data frame taken in pieces (ws_rx_begin, ws_rx_payload) from
 * q[0..n), a copy of the masked payload: piece sizes come from the
 * payload bytes. Checks that the pieces form a valid fragmentation of the
 * message (*started: a piece of it was handed out). Returns what
 * ws_rx_accept() would: 1 if the frame ended the message, 0 if not, or
 * the first error.
 */
static int
take_pieces(struct ws_rx *rx, const struct ws_frame *f, uint8_t *q,
    size_t n, int *started)
{
	struct ws_piece pc;
	size_t off = 0, k;
	int r;

	if ((r = ws_rx_begin(rx, f)) < 0)
		return r;
	do {
		k = 1 + (n > 0 ? q[off % n] % 97u : 0);
		if (k > n - off)
			k = n - off;
		r = ws_rx_payload(rx, q + off, k, &pc);
		if (r < 0)
			return r;
		FUZZ_CHECK(r == (off + k == n));
		FUZZ_CHECK(pc.opcode == (*started ? WS_OP_CONT :
		    (f->opcode == WS_OP_CONT ? 0xff : f->opcode)));
		FUZZ_CHECK(pc.fin == (f->fin && off + k == n));
		*started = !pc.fin;
		off += k;
	} while (off < n);
	return f->fin;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_rx rx, rx2;
	struct ws_frame f;
	uint64_t max_msg;
	size_t off = 1, n, cut;
	int need_mask, r, r2, started = 0;
	uint16_t code;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	/* Small limits reach WS_ERR_TOO_BIG with short inputs. */
	max_msg = (uint64_t)(data[0] & 0x3f) * 16;
	need_mask = (data[0] & 0x80) == 0;
	memcpy(buf, data, size);
	memcpy(pieces, data, size);
	memset(&rx, 0, sizeof(rx));
	memset(&rx2, 0, sizeof(rx2));

	while (off < size) {
		r = ws_frame_parse(&f, buf + off, size - off, need_mask, &rx,
		    max_msg);
		if (r < 0) {
			check_err(r);
			return 0;
		}
		if (r == 0) {
			/* "Need more" only when the header really is cut:
			 * the same bytes with room to spare are no error. */
			FUZZ_CHECK(size - off < WS_MAX_HEADER);
			return 0;
		}
		FUZZ_CHECK((size_t)r <= size - off && r <= WS_MAX_HEADER);
		FUZZ_CHECK((size_t)r == f.hdr_len);
		FUZZ_CHECK(!need_mask || f.masked);
		if (f.opcode & 0x8u)
			FUZZ_CHECK(f.fin && f.payload_len <= WS_MAX_CONTROL);
		else
			FUZZ_CHECK(f.payload_len <= max_msg &&
			    rx.msg_len + f.payload_len <= max_msg);
		check_build(&f);
		off += (size_t)r;
		if (f.payload_len > size - off)
			return 0;
		n = (size_t)f.payload_len;

		/* Unmasking in two pieces equals unmasking whole. */
		memcpy(whole, buf + off, n);
		ws_unmask(whole, n, f.mask, 0);
		cut = n ? buf[off] % (n + 1) : 0;
		ws_unmask(buf + off, cut, f.mask, 0);
		ws_unmask(buf + off + cut, n - cut, f.mask, cut);
		FUZZ_CHECK(memcmp(whole, buf + off, n) == 0);

		r = ws_rx_accept(&rx, &f, buf + off, n);
		/* A data frame in pieces: the same verdict, the same bytes
		 * and the same message state as whole. */
		if ((f.opcode & 0x8u) == 0) {
			r2 = take_pieces(&rx2, &f, pieces + off, n, &started);
			FUZZ_CHECK(r2 == r);
			if (r < 0) {
				check_err(r);
				return 0;
			}
			FUZZ_CHECK(memcmp(pieces + off, buf + off, n) == 0);
			FUZZ_CHECK(rx2.in_message == rx.in_message &&
			    rx2.msg_opcode == rx.msg_opcode &&
			    rx2.msg_len == rx.msg_len && rx2.utf8 == rx.utf8 &&
			    !rx2.f_open);
		} else
			FUZZ_CHECK(ws_rx_begin(&rx2, &f) == WS_ERR_OPCODE);
		if (r < 0) {
			check_err(r);
			return 0;
		}
		if (f.opcode == WS_OP_CLOSE) {
			r = ws_close_parse(buf + off, n, &code);
			if (r < 0)
				check_err(r);
			else
				FUZZ_CHECK(code == WS_CLOSE_NO_STATUS ||
				    ws_close_code_valid(code));
			return 0;
		}
		off += n;
	}
	return 0;
}
