/*
 * fuzz_json.c: the JSON reader as the request handlers use it. The input
 * is one client message or API body: json_parse(), then the look-ups of
 * chat.c and api.c (json_get of each field, json_string, json_int) and a
 * walk over every token. Properties: json_parse() returns 0 or a
 * JSON_ERR_*; every token lies inside the input; the source text of any
 * value (json_raw) is itself a valid document of the same type; a string
 * unescaped by json_string() and written back by json_out_str() parses
 * to the same string; an integer read by json_int() and written back by
 * json_out_int() reads back the same; json_next() always moves forward.
 */
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "vkws.h"

static jsmntok_t tok[VKWS_JSON_TOKENS], tok2[VKWS_JSON_TOKENS];
static char str[FUZZ_MAX_INPUT], out[FUZZ_MAX_INPUT * 6 + 64];

/* What the handlers ask a request for. */
static const char *const fields[] = { "type", "id", "room", "content",
    "targetUserId", "since", "token", "method", "params", "data",
    "clientId", "userId", "rooms", "maxClients", "persistent", "code",
    "reason", "limit", "" };

static int
type_of(const struct json_doc *d, int i)
{
	return json_is_object(d, i) * 1 + json_is_array(d, i) * 2 +
	    json_is_string(d, i) * 4 + json_is_number(d, i) * 8 +
	    json_is_bool(d, i) * 16 + json_is_null(d, i) * 32;
}

static void
check_string(const struct json_doc *d, int i)
{
	struct json_doc d2;
	struct json_out o;
	int n;

	n = json_string(d, i, str, sizeof(str));
	FUZZ_CHECK(n >= 0);
	FUZZ_CHECK(json_streqn(d, i, str, (size_t)n));
	json_out_init(&o, out, sizeof(out));
	json_out_str(&o, str, (size_t)n);
	FUZZ_CHECK(json_out_ok(&o));
	FUZZ_CHECK(json_parse(&d2, tok2, VKWS_JSON_TOKENS, o.p, o.n) == 0);
	FUZZ_CHECK(json_is_string(&d2, 0));
	FUZZ_CHECK(json_streqn(&d2, 0, str, (size_t)n));
	/* A buffer one byte short is refused, never overrun. */
	if (n > 0)
		FUZZ_CHECK(json_string(d, i, str, (size_t)n - 1) ==
		    JSON_ERR_SPACE);
}

static void
check_number(const struct json_doc *d, int i)
{
	struct json_doc d2;
	struct json_out o;
	int64_t v, w;
	char buf[32];

	(void)json_int_trunc(d, i, &v);
	if (json_int(d, i, &v) != 0)
		return;
	json_out_init(&o, buf, sizeof(buf));
	json_out_int(&o, v);
	FUZZ_CHECK(json_out_ok(&o));
	FUZZ_CHECK(json_parse(&d2, tok2, VKWS_JSON_TOKENS, o.p, o.n) == 0);
	FUZZ_CHECK(json_int(&d2, 0, &w) == 0 && w == v);
	/* json_int_trunc() agrees below its 10^18 bound. */
	if (v < 1000000000000000000LL && v > -1000000000000000000LL)
		FUZZ_CHECK(json_int_trunc(d, i, &w) == 0 && w == v);
	else
		FUZZ_CHECK(json_int_trunc(d, i, &w) == JSON_ERR_RANGE);
}

static void
check_value(const struct json_doc *d, int i)
{
	struct json_doc d2;
	const char *p;
	size_t n = json_raw(d, i, &p);
	int t = type_of(d, i), nx;

	/* Exactly one type. */
	FUZZ_CHECK(t != 0 && (t & (t - 1)) == 0);
	FUZZ_CHECK(p >= d->src && n > 0 && p + n <= d->src + d->len);
	FUZZ_CHECK(json_parse(&d2, tok2, VKWS_JSON_TOKENS, p, n) == 0);
	FUZZ_CHECK(type_of(&d2, 0) == t);
	FUZZ_CHECK(d2.ntok == json_next(d, i) - i);
	nx = json_next(d, i);
	FUZZ_CHECK(nx > i && nx <= d->ntok);
	if (t == 16)
		FUZZ_CHECK(json_bool(d, i) == 0 || json_bool(d, i) == 1);
	else
		FUZZ_CHECK(json_bool(d, i) == JSON_ERR_TYPE);
	if (t == 4)
		check_string(d, i);
	if (t == 8)
		check_number(d, i);
	if (t == 1 || t == 2)
		FUZZ_CHECK(json_len(d, i) >= 0);
	else
		FUZZ_CHECK(json_len(d, i) == -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_doc d;
	size_t k;
	int r, i, v;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	r = json_parse(&d, tok, VKWS_JSON_TOKENS, (const char *)data, size);
	FUZZ_CHECK(r == 0 || (r <= JSON_ERR_SYNTAX && r >= JSON_ERR_RANGE));
	if (r != 0) {
		FUZZ_CHECK(d.ntok == 0);
		return 0;
	}
	FUZZ_CHECK(d.ntok >= 1 && d.ntok <= VKWS_JSON_TOKENS);
	/* The handlers' look-ups on the root object. */
	for (k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
		v = json_get(&d, 0, fields[k]);
		FUZZ_CHECK(v == -1 || (v > 0 && v < d.ntok));
		if (v > 0)
			check_value(&d, v);
	}
	/* Every token, while that stays near linear: each check parses
	 * the token's text again. */
	for (i = 0; i < d.ntok; i++) {
		if (i > 0 && (size_t)d.ntok * size > ((size_t)1 << 22))
			break;
		check_value(&d, i);
	}
	/* Out of range indexes are refused, not read. */
	FUZZ_CHECK(type_of(&d, d.ntok) == 0 && type_of(&d, -1) == 0);
	return 0;
}
