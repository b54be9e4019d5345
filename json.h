/*
 * json.h: strict JSON (RFC 8259) reading on top of jsmn, and a bounded
 * JSON writer. A document is checked byte by byte before jsmn indexes it
 * into the caller's token array, so every token handed out belongs to a
 * valid document. Nothing here allocates, does I/O or keeps state between
 * calls; strings stay in the caller's buffer until json_string() copies
 * one out.
 */
#ifndef VKWS_JSON_H
#define VKWS_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Only json.c compiles jsmn's functions (static there); the rest of the
 * tree sees its types. */
#ifndef JSMN_HEADER
#define JSMN_HEADER
#endif
#include <jsmn.h>

/* Deepest nesting of objects and arrays in one document; the outermost
 * container is level 1. Bounds the checker's stack, which is one bit per
 * level. */
#define JSON_MAX_DEPTH 32

enum {
	JSON_ERR_SYNTAX = -1,	/* not RFC 8259 JSON */
	JSON_ERR_UTF8 = -2,	/* bad UTF-8 or a lone \u surrogate */
	JSON_ERR_DEPTH = -3,	/* nested deeper than JSON_MAX_DEPTH */
	JSON_ERR_TOO_MANY = -4,	/* more tokens than the array holds */
	JSON_ERR_TOO_LONG = -5,	/* input longer than jsmn's int offsets */
	JSON_ERR_TYPE = -6,	/* token is not of the type asked for */
	JSON_ERR_SPACE = -7,	/* output buffer too small */
	JSON_ERR_RANGE = -8	/* number does not fit */
};

struct json_doc {
	const char *src;	/* the document, not NUL-terminated */
	size_t len;
	jsmntok_t *tok;		/* document order: a value, then its children */
	int ntok;
};

/*
 * Parse s[0..n) into tok[0..cap). Exactly one value, with only
 * whitespace around it; strings must be valid UTF-8 with valid escapes and
 * paired surrogates; numbers follow the RFC 8259 6 grammar. Returns 0, or
 * a JSON_ERR_* with d->ntok set to 0.
 */
int json_parse(struct json_doc *d, jsmntok_t *tok, unsigned cap,
    const char *s, size_t n);

/*
 * Index of the first token after the value at i and all it contains
 * (d->ntok at the end of the document); for an object key, its value.
 * Members of object o: key k = o + 1, value k + 1, next key
 * json_next(d, k + 1); json_len(d, o) of them.
 */
int json_next(const struct json_doc *d, int i);

/* Members of an object or elements of an array at i, else -1. */
int json_len(const struct json_doc *d, int i);

/*
 * Value of the member of the object at obj whose key, unescaped, equals
 * key. RFC 8259 4 leaves duplicate names to the reader: the first one
 * wins, always, so every caller sees the same member. -1 when absent or
 * when obj is not an object.
 */
int json_get(const struct json_doc *d, int obj, const char *key);

/* Type tests; false for an index out of range. */
int json_is_object(const struct json_doc *d, int i);
int json_is_array(const struct json_doc *d, int i);
int json_is_string(const struct json_doc *d, int i);
int json_is_number(const struct json_doc *d, int i);
int json_is_bool(const struct json_doc *d, int i);
int json_is_null(const struct json_doc *d, int i);

/* 1 for true, 0 for false, JSON_ERR_TYPE for anything else. */
int json_bool(const struct json_doc *d, int i);

/*
 * Unescape the string at i into out[0..cap): UTF-8, \uXXXX pairs joined.
 * Returns its length (no NUL is added; \u0000 gives a 0 byte), or
 * JSON_ERR_TYPE / JSON_ERR_SPACE.
 */
int json_string(const struct json_doc *d, int i, char *out, size_t cap);

/* Whether the string at i, unescaped, equals s[0..n) or the literal. */
int json_streqn(const struct json_doc *d, int i, const char *s, size_t n);
int json_streq(const struct json_doc *d, int i, const char *lit);

/*
 * The source text of the value at i, strings with their quotes, as
 * *p and the returned length; 0 for an index out of range. Lets a value
 * be forwarded byte for byte.
 */
size_t json_raw(const struct json_doc *d, int i, const char **p);

/*
 * The number at i, which must be an integer without fraction or exponent
 * ("10.0" and "1e1" are JSON_ERR_TYPE), into *out; JSON_ERR_RANGE past
 * int64_t.
 */
int json_int(const struct json_doc *d, int i, int64_t *out);

/*
 * Any number at i, fraction and exponent allowed, truncated toward zero
 * (1700000000.9 gives 1700000000, 17e8 gives 1700000000). JSON_ERR_RANGE
 * when its magnitude reaches 10^18, which no time in seconds does.
 */
int json_int_trunc(const struct json_doc *d, int i, int64_t *out);

/*
 * Bounded writer. Every call appends to p[0..cap) or, if that would pass
 * cap, sets err and writes nothing more, ever: check json_out_ok() once
 * at the end. Output is not NUL-terminated.
 */
struct json_out {
	char *p;
	size_t cap;
	size_t n;
	int err;	/* 0, or JSON_ERR_SPACE */
};

void json_out_init(struct json_out *o, char *buf, size_t cap);
void json_out_raw(struct json_out *o, const char *s, size_t n);
void json_out_lit(struct json_out *o, const char *lit);

/*
 * s[0..n) as a quoted JSON string: '"' and '\\' escaped, control
 * characters as \n \r \t \b \f or \u00XX, U+2028 and U+2029 as \u escapes
 * so the text is also safe inside a script. s must be valid UTF-8 (what
 * json_string() returns is); other bytes pass through unchanged.
 */
void json_out_str(struct json_out *o, const char *s, size_t n);
void json_out_int(struct json_out *o, int64_t v);
void json_out_uint(struct json_out *o, uint64_t v);
int json_out_ok(const struct json_out *o);

#endif
