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
 * output parses back to the same header.
 */
#include <string.h>

#include "fuzz.h"
#include "ws_frame.h"

static uint8_t buf[FUZZ_MAX_INPUT];
static uint8_t whole[FUZZ_MAX_INPUT];

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_rx rx;
	struct ws_frame f;
	uint64_t max_msg;
	size_t off = 1, n, cut;
	int need_mask, r;
	uint16_t code;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	/* Small limits reach WS_ERR_TOO_BIG with short inputs. */
	max_msg = (uint64_t)(data[0] & 0x3f) * 16;
	need_mask = (data[0] & 0x80) == 0;
	memcpy(buf, data, size);
	memset(&rx, 0, sizeof(rx));

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
