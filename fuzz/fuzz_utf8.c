/*
 * fuzz_utf8.c: the streaming UTF-8 validator (ws_utf8_feed) against a
 * reference decoder written from RFC 3629 4 here, sharing no code with
 * ws_frame.c. Properties: the input fed whole, byte by byte, and split
 * at a point chosen by the input all give the same verdict; that verdict
 * (a valid prefix, and whether it ends on a whole code point) is the
 * reference's; ws_close_parse() accepts a reason exactly when it is
 * valid UTF-8.
 */
#include <string.h>

#include "fuzz.h"
#include "ws_frame.h"

/*
 * Reference: 1 if p[0..n) is valid UTF-8 (no overlongs, no surrogates,
 * nothing past U+10FFFF), 2 if it is a valid prefix that ends inside a
 * code point, 0 otherwise.
 */
static int
ref_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp, min;

	while (i < n) {
		uint8_t c = p[i];

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2; cp = c & 0x1fu; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3; cp = c & 0x0fu; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4; cp = c & 0x07u; min = 0x10000;
		} else {
			return 0;
		}
		for (k = 1; k < len; k++) {
			if (i + k == n) {
				/* Cut short: a prefix only if no completion
				 * could be valid; check the bytes so far
				 * against the smallest and largest ends. */
				uint32_t lo = cp, hi = cp;
				size_t j;

				for (j = k; j < len; j++) {
					lo = lo << 6;
					hi = hi << 6 | 0x3fu;
				}
				if (hi < min || lo > 0x10ffff)
					return 0;
				if (lo >= 0xd800 && hi <= 0xdfff)
					return 0;
				return 2;
			}
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

static int
verdict(int r, uint32_t st)
{
	if (r < 0)
		return 0;
	return ws_utf8_complete(st) ? 1 : 2;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t s1 = WS_UTF8_ACCEPT, s2 = WS_UTF8_ACCEPT, s3 = WS_UTF8_ACCEPT;
	int r1, r2 = 0, r3, v;
	size_t i, cut;
	uint8_t close[WS_MAX_CONTROL];
	uint16_t code;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	r1 = ws_utf8_feed(&s1, data, size);
	for (i = 0; i < size && r2 == 0; i++)
		r2 = ws_utf8_feed(&s2, data + i, 1);
	cut = size ? data[0] % (size + 1) : 0;
	r3 = ws_utf8_feed(&s3, data, cut);
	if (r3 == 0)
		r3 = ws_utf8_feed(&s3, data + cut, size - cut);

	v = verdict(r1, s1);
	FUZZ_CHECK(v == verdict(r2, s2));
	FUZZ_CHECK(v == verdict(r3, s3));
	FUZZ_CHECK(v == ref_utf8(data, size));

	/* A close frame with code 1000 and this reason. */
	if (size <= WS_MAX_CONTROL - 2) {
		close[0] = 0x03;
		close[1] = 0xe8;
		memcpy(close + 2, data, size);
		r1 = ws_close_parse(close, size + 2, &code);
		FUZZ_CHECK((r1 == 0) == (v == 1));
		FUZZ_CHECK(r1 == 0 || r1 == WS_ERR_UTF8);
	}
	return 0;
}
