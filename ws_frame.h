/*
 * ws_frame.h: the RFC 6455 codec. Pure functions over caller memory: no
 * system calls, no globals, no logging, no allocation. Every parser takes
 * (pointer, length) and returns bytes consumed, 0 for "need more", or a
 * negative WS_ERR_* value.
 */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* RFC 6455 5.2 opcodes. */
enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA
};

/* RFC 6455 7.4.1 close codes the server sends or checks. */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_NO_STATUS = 1005,	/* never on the wire */
	WS_CLOSE_BAD_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_TRY_AGAIN = 1013,
	WS_CLOSE_AUTH = 4001,
	WS_CLOSE_IDLE = 4002
};

/*
 * Errors. Each maps to exactly one close code (ws_err_close_code()).
 */
enum {
	WS_ERR_RSV = -1,	/* reserved bit set, no extension agreed: 1002 */
	WS_ERR_OPCODE = -2,	/* reserved opcode: 1002 */
	WS_ERR_UNMASKED = -3,	/* client frame without mask: 1002 */
	WS_ERR_CTL_FRAG = -4,	/* control frame without FIN: 1002 */
	WS_ERR_CTL_LEN = -5,	/* control payload over 125 bytes: 1002 */
	WS_ERR_LEN_ENC = -6,	/* length not in its shortest form, or MSB set: 1002 */
	WS_ERR_TOO_BIG = -7,	/* message over the caller's limit: 1009 */
	WS_ERR_CONT = -8,	/* continuation without a started message: 1002 */
	WS_ERR_NOT_CONT = -9,	/* new data frame inside a fragmented message: 1002 */
	WS_ERR_UTF8 = -10,	/* invalid UTF-8 in a text message or reason: 1007 */
	WS_ERR_CLOSE_LEN = -11,	/* close payload of exactly 1 byte: 1002 */
	WS_ERR_CLOSE_CODE = -12	/* close code not allowed on the wire: 1002 */
};

/* Longest frame header: 2 + 8 (length) + 4 (mask key). */
#define WS_MAX_HEADER 14
/* RFC 6455 5.5: control frame payloads are at most 125 bytes. */
#define WS_MAX_CONTROL 125

/* A parsed frame header. The payload follows at offset hdr_len. */
struct ws_frame {
	uint8_t fin;
	uint8_t opcode;
	uint8_t masked;
	uint8_t mask[4];
	size_t hdr_len;
	uint64_t payload_len;
};

/*
 * Receive state across frames of one connection: whether a fragmented
 * message is open, its opcode, its length so far, and the UTF-8 state of
 * a text message; for a payload taken in pieces (ws_rx_begin()), the data
 * frame being read.
 */
struct ws_rx {
	uint8_t in_message;	/* a non-final data frame was seen (pieces:
				 * or a data frame is open) */
	uint8_t msg_opcode;	/* WS_OP_TEXT or WS_OP_BINARY */
	uint8_t f_open;		/* pieces: a data frame's payload is open */
	uint8_t f_fin;		/* ... and that frame ends its message */
	uint32_t utf8;		/* ws_utf8 state of the open text message */
	uint64_t msg_len;	/* payload bytes of the open message so far */
	uint64_t f_left;	/* pieces: payload bytes still to come */
	uint8_t f_mask[4];	/* ... the frame's mask key */
	uint8_t f_phase;	/* ... payload bytes taken, modulo 4 */
	uint8_t f_first;	/* ... no byte of the message forwarded yet */
};

/*
 * How to forward one piece of a payload as a frame of its own
 * (ws_rx_payload()): the message's opcode for its first piece, then
 * WS_OP_CONT; fin on the piece that ends the message.
 */
struct ws_piece {
	uint8_t opcode;
	uint8_t fin;
};

/*
 * Parse one frame header from p[0..len). need_mask: 1 for frames from a
 * client (RFC 6455 5.1: the server MUST close on an unmasked frame).
 * max_msg: the largest whole message accepted; a data frame that would
 * take rx->msg_len past it fails with WS_ERR_TOO_BIG before any payload
 * is read. rx may be NULL to skip the fragmentation checks; otherwise
 * they are made here but rx is not changed (see ws_rx_accept()).
 * need_mask 0 accepts masked and unmasked frames alike. Errors are
 * reported as soon as the bytes that show them are in: byte 0 (RSV,
 * opcode, control FIN, fragmentation order), then byte 1 (mask bit,
 * control length), then the extended length (MSB at its first byte,
 * shortest form and max_msg once it is whole); none waits for the mask
 * key. *f is written only when the whole header is accepted.
 * Returns the header length, 0 if more bytes are needed, or WS_ERR_*.
 */
int ws_frame_parse(struct ws_frame *f, const uint8_t *p, size_t len,
    int need_mask, const struct ws_rx *rx, uint64_t max_msg);

/*
 * Record a whole frame whose header ws_frame_parse() accepted and whose
 * (unmasked) payload is p[0..n): advances the fragmentation state and,
 * for text, the streaming UTF-8 check. Control frames leave rx alone.
 * Returns 1 when this frame ends a message, 0 when the message goes on,
 * or WS_ERR_UTF8 (at the first invalid byte, or a final frame that ends
 * inside a character). A frame out of order (possible only if it was
 * parsed without rx) gets WS_ERR_CONT or WS_ERR_NOT_CONT.
 */
int ws_rx_accept(struct ws_rx *rx, const struct ws_frame *f,
    const uint8_t *p, size_t n);

/*
 * A data frame's payload in pieces, as it arrives, for a caller that
 * passes each piece on without holding the frame (an echo of messages of
 * any size). ws_rx_begin() opens the payload of a data frame whose
 * header ws_frame_parse() accepted (with rx): it makes the fragmentation
 * checks of ws_rx_accept() and returns 0, WS_ERR_CONT or WS_ERR_NOT_CONT;
 * a control frame (WS_ERR_OPCODE) is never taken in pieces (its payload
 * is at most 125 bytes: wait for it whole and use ws_rx_accept()), nor a
 * frame while another is open (WS_ERR_NOT_CONT).
 *
 * ws_rx_payload() then takes the next n bytes of that payload, n at most
 * rx->f_left, in pieces of any size (0 only for a frame with no payload):
 * it unmasks p[0..n) in place and checks the UTF-8 of a text message byte
 * by byte, so a bad byte is reported in the piece that holds it, before
 * the rest of its frame. On success *out says how to forward the piece
 * as a frame (RFC 6455 5.4: a message may be split into any number of
 * fragments; a piece may end inside a UTF-8 sequence, which the message
 * completes). Returns 1 when the piece ends the frame, 0 when more of it
 * is to come, or WS_ERR_UTF8 (a bad byte, or a message that ends inside
 * a code point: *out is not written and rx stays failed). Without an
 * open frame, or for n past rx->f_left, it returns WS_ERR_CONT and
 * touches nothing.
 */
int ws_rx_begin(struct ws_rx *rx, const struct ws_frame *f);
int ws_rx_payload(struct ws_rx *rx, uint8_t *p, size_t n,
    struct ws_piece *out);

/*
 * XOR p[0..n) with the mask key, as if p started at byte offset off of
 * the payload (so a payload may be unmasked in pieces).
 */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);

/*
 * Write a server frame header (never masked, RFC 6455 5.1) into
 * out[0..WS_MAX_HEADER) and return its length.
 */
size_t ws_header_build(uint8_t *out, int fin, int opcode, uint64_t len);

/*
 * Streaming UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). *state starts at WS_UTF8_ACCEPT. Returns 0 while
 * the input is a valid prefix, WS_ERR_UTF8 at the first invalid byte.
 * ws_utf8_complete() says whether the text seen ends on a whole code point.
 */
#define WS_UTF8_ACCEPT 0u
int ws_utf8_feed(uint32_t *state, const uint8_t *p, size_t n);
int ws_utf8_complete(uint32_t state);

/*
 * Validate a close frame payload (RFC 6455 5.5.1, 7.4): empty, or a code
 * the peer may send followed by UTF-8. Sets *code to the code, or
 * WS_CLOSE_NO_STATUS for an empty payload. Returns 0 or WS_ERR_*
 * (WS_ERR_CLOSE_LEN, WS_ERR_CLOSE_CODE, WS_ERR_UTF8, or WS_ERR_CTL_LEN
 * for more than 125 bytes).
 */
int ws_close_parse(const uint8_t *p, size_t n, uint16_t *code);

/* Whether a peer may send this close code (RFC 6455 7.4.1, 7.4.2). */
int ws_close_code_valid(uint32_t code);

/* The close code for a WS_ERR_* value. */
uint16_t ws_err_close_code(int err);

/*
 * Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2): base64
 * of SHA-1(key + GUID). out receives exactly WS_ACCEPT_LEN bytes, no NUL.
 */
#define WS_ACCEPT_LEN 28
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN]);

/*
 * Whether key is a valid Sec-WebSocket-Key: base64 of 16 bytes
 * (RFC 6455 4.1: 24 characters ending in "==").
 */
int ws_key_valid(const char *key, size_t key_len);

#endif
