/*
 * test_json.c: the strict JSON reader and the bounded writer. Every class
 * of invalid input jsmn alone would accept is refused; valid documents
 * parse with the expected tokens; limits are hit one past; unescaping,
 * integers and the writer are checked at their edges. Inputs are copied
 * against a PROT_NONE page so any read past the end crashes at once.
 */
#define _DEFAULT_SOURCE	/* MAP_ANONYMOUS */

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "../json.h"

#define NTOK 256

static jsmntok_t tok[NTOK];
static struct json_doc doc;
static char *guard_page;	/* a page followed by a PROT_NONE page */
static size_t page;

static void
guard_init(void)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	guard_page = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_page == MAP_FAILED ||
	    mprotect(guard_page + page, page, PROT_NONE) != 0) {
		perror("mmap");
		guard_page = NULL;
	}
}

/* Parse s[0..n) from the end of the guarded page with cap tokens. */
static int
parse_n(const char *s, size_t n, unsigned cap)
{
	char *p;

	if (guard_page == NULL || n > page)
		return -100;
	p = guard_page + page - n;
	memcpy(p, s, n);
	return json_parse(&doc, tok, cap, p, n);
}

static int
parse(const char *s)
{
	return parse_n(s, strlen(s), NTOK);
}

static void
test_invalid(void)
{
	static const char *const bad[] = {
		"", " ", "\n\t ", "{", "}", "[", "]", "[[]", "[]]", "{}}",
		"{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]",
		"{\"a\" 1}", "{\"a\" \"b\"}", "{\"a\"::1}", "[,1]", "[1,,2]",
		"{,}", "{1:2}", "{\"a\":1 \"b\":2}", "[\"a\":1]",
		"{\"a\",\"b\"}", "{\"a\":1,,\"b\":2}", "{:1}", "[:]",
		"{} {}", "[] x", "1 2", "\"a\" \"b\"", "{\"a\":1}}",
		"01", "-", "1.", ".5", "+1", "1e", "1e+", "1E-", "NaN",
		"Infinity", "-Infinity", "0x10", "00", "-01", "1.e5",
		"--1", "-a", "1..2", "1e1.5", "[01]", "[-]", "[1.]", "[.5]",
		"[+1]", "[1e]", "[NaN]", "[0x1]", "{\"a\":01}",
		"tru", "truex", "nul", "nulll", "True", "NULL", "fals",
		"[true false]", "[truefalse]", "undefined",
		"\"abc", "\"\\x\"", "\"\\u12\"", "\"\\uZZZZ\"", "\"\\u12G4\"",
		"\"\\'\"", "\"\\a\"", "\"\\", "'a'", "\"a\tb\"",
		"\"a\nb\"", "\"\x1f\"", "\xef\xbb\xbf{}", "[1]x",
		"{\"a\":[1,2}", "{\"a\":{\"b\":1]}", "[{]}", "/* */ {}",
	};
	size_t i;
	int r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = parse(bad[i]);
		if (r >= 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(r < 0);
		CHECK_EQ(doc.ntok, 0);
	}
	/* jsmn stops at a NUL; the checker must not. */
	CHECK_EQ(parse_n("[1]\0", 4, NTOK), JSON_ERR_SYNTAX);
	CHECK_EQ(parse_n("\"a\0b\"", 5, NTOK), JSON_ERR_SYNTAX);
	CHECK_EQ(parse_n("{\"a\":\0}", 7, NTOK), JSON_ERR_SYNTAX);
	/* Specific codes for a few classes. */
	CHECK_EQ(parse("{\"a\"}"), JSON_ERR_SYNTAX);
	CHECK_EQ(parse("[1 2]"), JSON_ERR_SYNTAX);
	CHECK_EQ(parse("01"), JSON_ERR_SYNTAX);
}

static void
test_utf8(void)
{
	static const char *const bad[] = {
		"\"\x80\"",			/* lone continuation */
		"\"\xbf\"",
		"\"\xc0\xaf\"",			/* overlong '/' */
		"\"\xc1\xbf\"",
		"\"\xe0\x80\xaf\"",		/* overlong 3-byte */
		"\"\xe0\x9f\xbf\"",
		"\"\xed\xa0\x80\"",		/* UTF-16 surrogate */
		"\"\xed\xbf\xbf\"",
		"\"\xf0\x80\x80\xaf\"",		/* overlong 4-byte */
		"\"\xf0\x8f\xbf\xbf\"",
		"\"\xf4\x90\x80\x80\"",		/* past U+10FFFF */
		"\"\xf5\x80\x80\x80\"",
		"\"\xf8\x88\x80\x80\x80\"",
		"\"\xfe\"", "\"\xff\"",
		"\"\xe4\xb8\"",			/* truncated */
		"\"\xf0\x9f\x98\"",
		"\"\xc3\"",
		"\"\xc3\x28\"",			/* bad continuation */
		"\"\xe4\x28\xad\"",
		"\"\xf0\x9f\x28\x80\"",
		"[\"ok\",\"\xc3\"]",
		"{\"\xff\":1}",			/* in a key */
		/* \u escapes that are not a valid pair */
		"\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"",
		"\"\\ud83d\\ud83d\"", "\"\\ud83dx\"", "\"\\ude00\\ud83d\"",
		"\"\\udbff\"", "\"\\udc00\"", "\"\\uD800\\n\"",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(parse(bad[i]), JSON_ERR_UTF8);
}

static void
test_valid(void)
{
	static const char *const good[] = {
		"{}", "[]", "0", "-0", "1", "-1", "1.5e-3", "1E+2", "0.0",
		"-0.0e0", "123456789012345678901234567890", "true", "false",
		"null", " null ", "\"\"", "\"x\"", "\t\r\n [ 1 ] \n",
		"{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}",
		"[1E+2,-0.0,1e-7,true,false,null,\"s\",{},[]]",
		"\"\\u0000\"", "\"\xf0\x9f\x98\x80\"",
		"\"\xe4\xb8\xad\xe6\x96\x87\"", "\"\xf4\x8f\xbf\xbf\"",
		"\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\"",
		"\"\\ud83d\\ude00\"", "\"\\uDBFF\\uDFFF\"", "\"\\/\"",
		"{\"\":\"\"}", "{ \"a\" : 1 , \"b\" : [ ] }", "[[[]]]",
		"{\"a\":{\"a\":{\"a\":{}}}}", "\"\x7f\"",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (parse(good[i]) != 0)
			fprintf(stderr, "refused: %s\n", good[i]);
		CHECK_EQ(parse(good[i]), 0);
		CHECK(doc.ntok >= 1);
	}
}

static void
test_tokens(void)
{
	CHECK_EQ(parse("{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}"), 0);
	CHECK_EQ(doc.ntok, 10);
	CHECK(json_is_object(&doc, 0));
	CHECK_EQ(json_len(&doc, 0), 2);
	CHECK(json_is_string(&doc, 1));
	CHECK(json_is_array(&doc, 2));
	CHECK_EQ(json_len(&doc, 2), 3);
	CHECK(json_is_number(&doc, 3));
	CHECK(json_is_object(&doc, 5));
	CHECK(json_is_null(&doc, 7));
	CHECK(!json_is_bool(&doc, 7));
	CHECK_EQ(json_len(&doc, 7), -1);
	CHECK(json_is_string(&doc, 9));
	CHECK(!json_is_string(&doc, 10));
	CHECK(!json_is_object(&doc, -1));
	CHECK_EQ(json_next(&doc, 0), 10);
	CHECK_EQ(json_next(&doc, 1), 2);
	CHECK_EQ(json_next(&doc, 2), 8);
	CHECK_EQ(json_next(&doc, 5), 8);
	CHECK_EQ(json_next(&doc, 3), 4);
	CHECK_EQ(json_next(&doc, 9), 10);

	/* A bare root scalar is one token covering it. */
	CHECK_EQ(parse("  -12.5e3 "), 0);
	CHECK_EQ(doc.ntok, 1);
	CHECK(json_is_number(&doc, 0));
	CHECK_EQ(doc.tok[0].start, 2);
	CHECK_EQ(doc.tok[0].end, 9);
	CHECK_EQ(parse("true"), 0);
	CHECK_EQ(json_bool(&doc, 0), 1);
	CHECK_EQ(parse("false"), 0);
	CHECK_EQ(json_bool(&doc, 0), 0);
	CHECK_EQ(parse("null"), 0);
	CHECK_EQ(json_bool(&doc, 0), JSON_ERR_TYPE);
}

/* Every proper prefix of a document is refused. */
static void
test_truncated(void)
{
	static const char full[] =
	    "{\"a\":[1,true,\"x\\u00e9\xe4\xb8\xad\\ud83d\\ude00\"],"
	    "\"b\":{\"c\":null,\"d\":-1.5e+3}}";
	size_t n = sizeof(full) - 1, k;

	CHECK_EQ(parse_n(full, n, NTOK), 0);
	for (k = 0; k < n; k++)
		CHECK(parse_n(full, k, NTOK) < 0);
}

/* {"a":{"a":...{}}} with depth levels into p; returns its length. */
static size_t
nest_objects(char *p, size_t depth)
{
	size_t n = 0, i;

	for (i = 0; i + 1 < depth; i++) {
		memcpy(p + n, "{\"a\":", 5);
		n += 5;
	}
	p[n++] = '{';
	for (i = 0; i < depth; i++)
		p[n++] = '}';
	return n;
}

static void
test_limits(void)
{
	static char deep[2 * JSON_MAX_DEPTH + 8];
	static char deepo[8 * JSON_MAX_DEPTH + 16];
	size_t n, i;

	/* JSON_MAX_DEPTH nested arrays parse; one more does not. */
	for (n = 0, i = 0; i < JSON_MAX_DEPTH; i++)
		deep[n++] = '[';
	for (i = 0; i < JSON_MAX_DEPTH; i++)
		deep[n++] = ']';
	CHECK_EQ(parse_n(deep, n, NTOK), 0);
	CHECK_EQ(doc.ntok, JSON_MAX_DEPTH);
	for (n = 0, i = 0; i < JSON_MAX_DEPTH + 1; i++)
		deep[n++] = '[';
	for (i = 0; i < JSON_MAX_DEPTH + 1; i++)
		deep[n++] = ']';
	CHECK_EQ(parse_n(deep, n, NTOK), JSON_ERR_DEPTH);

	/* The same with objects: {"a":{"a":...{}}}. */
	n = nest_objects(deepo, JSON_MAX_DEPTH);
	CHECK_EQ(parse_n(deepo, n, NTOK), 0);
	CHECK_EQ(doc.ntok, 2 * JSON_MAX_DEPTH - 1);
	n = nest_objects(deepo, JSON_MAX_DEPTH + 1);
	CHECK_EQ(parse_n(deepo, n, NTOK), JSON_ERR_DEPTH);

	/* Tokens: exactly enough, then one short. */
	CHECK_EQ(parse_n("[1,2,3]", 7, 4), 0);
	CHECK_EQ(doc.ntok, 4);
	CHECK_EQ(parse_n("[1,2,3]", 7, 3), JSON_ERR_TOO_MANY);
	CHECK_EQ(parse_n("{\"a\":1}", 7, 3), 0);
	CHECK_EQ(parse_n("{\"a\":1}", 7, 2), JSON_ERR_TOO_MANY);
	CHECK_EQ(parse_n("7", 1, 1), 0);
	CHECK_EQ(parse_n("7", 1, 0), JSON_ERR_TOO_MANY);
	CHECK_EQ(parse_n("\"s\"", 3, 0), JSON_ERR_TOO_MANY);
}

static void
test_get(void)
{
	int v, d;

	CHECK_EQ(parse("{\"data\":{\"type\":\"x\"},\"id\":1}"), 0);
	/* A nested "type" is not a member of the root. */
	CHECK_EQ(json_get(&doc, 0, "type"), -1);
	d = json_get(&doc, 0, "data");
	CHECK_EQ(d, 2);
	v = json_get(&doc, d, "type");
	CHECK_EQ(v, 4);
	CHECK(json_streq(&doc, v, "x"));
	CHECK_EQ(json_get(&doc, 0, "id"), 6);
	CHECK_EQ(json_get(&doc, v, "type"), -1);	/* not an object */
	CHECK_EQ(json_get(&doc, 99, "type"), -1);

	/* A string value equal to the key is not a key. */
	CHECK_EQ(parse("{\"x\":\"type\",\"type\":2}"), 0);
	CHECK_EQ(json_get(&doc, 0, "type"), 4);

	/* Keys compare unescaped and by length. */
	CHECK_EQ(parse("{\"t\\u0079pe\":\"chat\",\"a\\\"b\":1}"), 0);
	CHECK_EQ(json_get(&doc, 0, "type"), 2);
	CHECK_EQ(json_get(&doc, 0, "a\"b"), 4);
	CHECK_EQ(json_get(&doc, 0, "typ"), -1);
	CHECK_EQ(json_get(&doc, 0, "types"), -1);
	CHECK_EQ(json_get(&doc, 0, ""), -1);
	CHECK_EQ(parse("{\"typ\":1,\"types\":2,\"\":3}"), 0);
	CHECK_EQ(json_get(&doc, 0, "type"), -1);
	CHECK_EQ(json_get(&doc, 0, ""), 6);

	/* Duplicate names: the first wins. */
	CHECK_EQ(parse("{\"a\":1,\"a\":2}"), 0);
	CHECK_EQ(json_get(&doc, 0, "a"), 2);

	/* Members after a large nested value are still found. */
	CHECK_EQ(parse("{\"a\":[[1,[2]],{\"b\":[3]}],\"z\":true}"), 0);
	v = json_get(&doc, 0, "z");
	CHECK_EQ(json_bool(&doc, v), 1);
	CHECK_EQ(json_get(&doc, 0, "b"), -1);
}

static void
test_string(void)
{
	static const char want[] =
	    "\"\\/\b\f\n\r\tA\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80";
	char out[64];
	const char *raw;
	int n;

	CHECK_EQ(parse("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u4E2D"
	    "\\ud83d\\ude00\"]"), 0);
	n = json_string(&doc, 1, out, sizeof(out));
	CHECK_EQ(n, sizeof(want) - 1);
	CHECK_MEM(out, want, sizeof(want) - 1);
	/* Exactly enough room, then one byte short. */
	CHECK_EQ(json_string(&doc, 1, out, sizeof(want) - 1), n);
	CHECK_EQ(json_string(&doc, 1, out, sizeof(want) - 2), JSON_ERR_SPACE);
	CHECK_EQ(json_string(&doc, 0, out, sizeof(out)), JSON_ERR_TYPE);
	CHECK(json_streqn(&doc, 1, want, sizeof(want) - 1));
	CHECK(!json_streqn(&doc, 1, want, sizeof(want) - 2));

	CHECK_EQ(parse("\"\\ud83d\\ude00\""), 0);
	CHECK_EQ(json_string(&doc, 0, out, sizeof(out)), 4);
	CHECK_MEM(out, "\xf0\x9f\x98\x80", 4);
	CHECK_EQ(parse("\"\\uDBFF\\uDFFF\\u0800\\u07ff\\u0080\""), 0);
	CHECK_EQ(json_string(&doc, 0, out, sizeof(out)), 11);
	CHECK_MEM(out, "\xf4\x8f\xbf\xbf\xe0\xa0\x80\xdf\xbf\xc2\x80", 11);
	CHECK_EQ(parse("\"a\\u0000b\""), 0);
	CHECK_EQ(json_string(&doc, 0, out, sizeof(out)), 3);
	CHECK_MEM(out, "a\0b", 3);
	CHECK(json_streqn(&doc, 0, "a\0b", 3));
	CHECK(!json_streq(&doc, 0, "a"));

	/* Raw UTF-8 passes through untouched. */
	CHECK_EQ(parse("\"\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80\""), 0);
	CHECK_EQ(json_string(&doc, 0, out, sizeof(out)), 11);
	CHECK_MEM(out, "\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80", 11);
	CHECK_EQ(parse("\"\""), 0);
	CHECK_EQ(json_string(&doc, 0, out, 0), 0);
	CHECK(json_streq(&doc, 0, ""));

	/* Raw text keeps a string's quotes and escapes. */
	CHECK_EQ(parse("{\"k\":\"a\\nb\",\"o\":{\"x\":[1]}}"), 0);
	CHECK_EQ(json_raw(&doc, 2, &raw), 6);
	CHECK_MEM(raw, "\"a\\nb\"", 6);
	CHECK_EQ(json_raw(&doc, 4, &raw), 9);
	CHECK_MEM(raw, "{\"x\":[1]}", 9);
	CHECK_EQ(json_raw(&doc, 99, &raw), 0);
}

static void
test_int(void)
{
	static const struct {
		const char *s;
		int r;
		int64_t v;
	} cases[] = {
		{ "0", 0, 0 },
		{ "-0", 0, 0 },
		{ "42", 0, 42 },
		{ "-42", 0, -42 },
		{ "9223372036854775807", 0, INT64_MAX },
		{ "-9223372036854775808", 0, INT64_MIN },
		{ "9223372036854775808", JSON_ERR_RANGE, 0 },
		{ "-9223372036854775809", JSON_ERR_RANGE, 0 },
		{ "99999999999999999999", JSON_ERR_RANGE, 0 },
		{ "1.5", JSON_ERR_TYPE, 0 },
		{ "10.0", JSON_ERR_TYPE, 0 },
		{ "1e3", JSON_ERR_TYPE, 0 },
		{ "\"5\"", JSON_ERR_TYPE, 0 },
		{ "true", JSON_ERR_TYPE, 0 },
		{ "null", JSON_ERR_TYPE, 0 },
		{ "[1]", JSON_ERR_TYPE, 0 },
	};
	static const struct {
		const char *s;
		int r;
		int64_t v;
	} tcases[] = {
		{ "1700000000.5", 0, 1700000000 },
		{ "1700000000.999", 0, 1700000000 },
		{ "-1.9", 0, -1 },
		{ "17e8", 0, 1700000000 },
		{ "1.7E9", 0, 1700000000 },
		{ "1.7e+9", 0, 1700000000 },
		{ "0.5", 0, 0 },
		{ "1e-5", 0, 0 },
		{ "5e-1", 0, 0 },
		{ "12345e-2", 0, 123 },
		{ "123.456e1", 0, 1234 },
		{ "0.00012e4", 0, 1 },
		{ "0e999999999999", 0, 0 },
		{ "999999999999999999", 0, 999999999999999999LL },
		{ "1e18", JSON_ERR_RANGE, 0 },
		{ "1e400", JSON_ERR_RANGE, 0 },
		{ "-1e99999999999999", JSON_ERR_RANGE, 0 },
		{ "1e-99999999999999", 0, 0 },
		{ "42", 0, 42 },
		{ "\"42\"", JSON_ERR_TYPE, 0 },
	};
	size_t i;
	int64_t v;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_EQ(parse(cases[i].s), 0);
		v = 12345;
		CHECK_EQ(json_int(&doc, 0, &v), cases[i].r);
		if (cases[i].r == 0)
			CHECK_EQ(v, cases[i].v);
	}
	for (i = 0; i < sizeof(tcases) / sizeof(tcases[0]); i++) {
		CHECK_EQ(parse(tcases[i].s), 0);
		v = 12345;
		CHECK_EQ(json_int_trunc(&doc, 0, &v), tcases[i].r);
		if (tcases[i].r == 0)
			CHECK_EQ(v, tcases[i].v);
	}
}

/* Write s with json_out_str, parse it back, and compare. */
static int
roundtrip(const char *s, size_t n)
{
	static char buf[1024], back[512];
	struct json_out o;
	int r;

	json_out_init(&o, buf, sizeof(buf));
	json_out_str(&o, s, n);
	if (!json_out_ok(&o))
		return 0;
	if (json_parse(&doc, tok, NTOK, buf, o.n) != 0)
		return 0;
	r = json_string(&doc, 0, back, sizeof(back));
	return r >= 0 && (size_t)r == n && memcmp(back, s, n) == 0;
}

static void
test_writer(void)
{
	static const char mixed[] =
	    "q\"b\\s/\x7f \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 "
	    "\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xa7";
	static char all[40];
	char buf[80], one;
	struct json_out o;
	int c;

	/* Every control character alone, then all of them together. */
	for (c = 0; c < 0x20; c++) {
		one = (char)c;
		CHECK(roundtrip(&one, 1));
		all[c] = (char)c;
	}
	memcpy(all + 0x20, "\"\\\"\\", 4);
	CHECK(roundtrip(all, 0x24));
	CHECK(roundtrip(mixed, sizeof(mixed) - 1));
	CHECK(roundtrip("", 0));

	/* The escapes chosen. */
	json_out_init(&o, buf, sizeof(buf));
	json_out_str(&o, "a\"b\\\n\x01\t\xe2\x80\xa8/", 11);
	CHECK(json_out_ok(&o));
	CHECK_EQ(o.n, 25);
	CHECK_MEM(buf, "\"a\\\"b\\\\\\n\\u0001\\t\\u2028/\"", 25);

	/* Integers. */
	json_out_init(&o, buf, sizeof(buf));
	json_out_int(&o, INT64_MIN);
	json_out_lit(&o, ",");
	json_out_int(&o, INT64_MAX);
	json_out_lit(&o, ",");
	json_out_int(&o, 0);
	json_out_lit(&o, ",");
	json_out_int(&o, -7);
	json_out_lit(&o, ",");
	json_out_uint(&o, UINT64_MAX);
	CHECK(json_out_ok(&o));
	CHECK_EQ(o.n, 20 + 1 + 19 + 1 + 1 + 1 + 2 + 1 + 20);
	CHECK_MEM(buf, "-9223372036854775808,9223372036854775807,0,-7,"
	    "18446744073709551615", o.n);
}

static void
test_overflow(void)
{
	char buf[24];
	struct json_out o;

	/* "\"a\\nb\"" is 6 bytes: a cap of 6 holds it. */
	memset(buf, 'X', sizeof(buf));
	json_out_init(&o, buf, 6);
	json_out_str(&o, "a\nb", 3);
	CHECK(json_out_ok(&o));
	CHECK_EQ(o.n, 6);
	CHECK_EQ(buf[6], 'X');
	json_out_raw(&o, "", 0);
	CHECK(json_out_ok(&o));
	json_out_lit(&o, "z");
	CHECK(!json_out_ok(&o));
	CHECK_EQ(o.err, JSON_ERR_SPACE);
	CHECK_EQ(buf[6], 'X');

	/* A cap of 5 does not, and stays failed. */
	memset(buf, 'X', sizeof(buf));
	json_out_init(&o, buf, 5);
	json_out_str(&o, "a\nb", 3);
	CHECK(!json_out_ok(&o));
	CHECK(o.n <= 5);
	CHECK_EQ(buf[5], 'X');
	json_out_raw(&o, "", 0);
	json_out_int(&o, 1);
	CHECK(!json_out_ok(&o));
	CHECK_EQ(buf[5], 'X');

	/* Integers at exact cap and one short. */
	json_out_init(&o, buf, 20);
	json_out_int(&o, INT64_MIN);
	CHECK(json_out_ok(&o));
	CHECK_EQ(o.n, 20);
	json_out_init(&o, buf, 19);
	json_out_int(&o, INT64_MIN);
	CHECK(!json_out_ok(&o));
	CHECK(o.n <= 19);
	json_out_init(&o, buf, 0);
	json_out_lit(&o, "");
	CHECK(json_out_ok(&o));
	json_out_uint(&o, 0);
	CHECK(!json_out_ok(&o));
	CHECK_EQ(o.n, 0);
}

int
main(void)
{
	guard_init();
	CHECK(guard_page != NULL);
	test_invalid();
	test_utf8();
	test_valid();
	test_tokens();
	test_truncated();
	test_limits();
	test_get();
	test_string();
	test_int();
	test_writer();
	test_overflow();
	CHECK_MAIN();
}
