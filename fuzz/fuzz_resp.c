/*
 * fuzz_resp.c: the RESP codec as the cluster link runs it. The input is
 * a stream of replies, parsed one after another with resp_parse() until
 * an error, "need more" or the end. Properties: a reply is never longer
 * than the input; every value and string lies inside it; end indexes
 * nest (an aggregate's elements end within it); every prefix of a reply
 * is "need more"; an error is one of RESP_ERR_*; a request encoded from
 * the parsed strings parses back to the same bytes.
 */
#include <string.h>

#include "fuzz.h"
#include "resp.h"

#define NV 256
static struct resp_val v[NV], w[NV];
static uint8_t enc[2 * FUZZ_MAX_INPUT + 1024];

static void
check_vals(const uint8_t *p, size_t len, size_t nv)
{
	size_t k;

	FUZZ_CHECK(nv >= 1 && nv <= NV);
	FUZZ_CHECK(v[0].end == nv);
	for (k = 0; k < nv; k++) {
		FUZZ_CHECK(v[k].end > k && v[k].end <= nv);
		FUZZ_CHECK(v[k].off <= len && v[k].len <= len - v[k].off);
		if (v[k].end > k + 1)
			FUZZ_CHECK(v[v[k].end - 1].end <= v[k].end);
		if (v[k].type == RESP_BOOL)
			FUZZ_CHECK(v[k].i == 0 || v[k].i == 1);
	}
	(void)p;
}

/* Every bulk and simple string of the reply as one request. */
static void
check_encode(const uint8_t *p, size_t nv)
{
	struct resp_enc e;
	size_t k, m;
	unsigned argc = 0;
	long n, r;

	for (k = 0; k < nv; k++)
		if (v[k].type == RESP_BULK || v[k].type == RESP_SIMPLE)
			argc++;
	if (argc == 0 || argc >= NV)
		return;
	resp_enc_begin(&e, enc, sizeof enc, argc);
	for (k = 0; k < nv; k++)
		if (v[k].type == RESP_BULK || v[k].type == RESP_SIMPLE)
			resp_enc_arg(&e, p + v[k].off, v[k].len);
	n = resp_enc_end(&e);
	FUZZ_CHECK(n > 0);
	r = resp_parse(enc, (size_t)n, w, NV, &m);
	FUZZ_CHECK(r == n && m == argc + 1u);
	for (k = 0, m = 1; k < nv; k++) {
		if (v[k].type != RESP_BULK && v[k].type != RESP_SIMPLE)
			continue;
		FUZZ_CHECK(w[m].len == v[k].len);
		FUZZ_CHECK(memcmp(enc + w[m].off, p + v[k].off, v[k].len) == 0);
		m++;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, nv, cut;
	long r;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	while (off < size) {
		r = resp_parse(data + off, size - off, v, NV, &nv);
		if (r == 0)
			break;
		if (r < 0) {
			FUZZ_CHECK(r >= RESP_ERR_STREAM && r <= RESP_ERR_TYPE);
			break;
		}
		FUZZ_CHECK((size_t)r <= size - off);
		check_vals(data + off, (size_t)r, nv);
		check_encode(data + off, nv);
		/* A prefix of a whole reply is never whole, never an error. */
		cut = (size_t)r / 2;
		FUZZ_CHECK(resp_parse(data + off, cut, w, NV, &nv) == 0);
		off += (size_t)r;
	}
	return 0;
}
