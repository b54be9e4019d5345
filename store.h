/*
 * store.h: the record format of the vkws log (store.c) and its codec, so
 * that the tests can build, cut and corrupt logs byte by byte.
 *
 * A log file is a sequence of records, each
 *
 *	length	4 bytes, little endian: payload bytes, 1..VKWS_REC_MAX
 *	type	1 byte: VKWS_REC_*
 *	crc32	4 bytes, little endian: CRC-32 (IEEE 802.3, as zlib) of the
 *		length, the type and the payload
 *	payload	length bytes, laid out by type:
 *
 *	HEADER	"VKWL", version (4, LE); always the first record of a file
 *	ROOM2	name length (1), name, maxClients (4, LE), persistent (1),
 *		seq (8, LE): the seq of the room's last message, 0 unknown,
 *		life (8, LE), createdAt (8, LE, wall ms)
 *	CHAT2	name length (1), name, life (8, LE), seq (8, LE), the chat
 *		frame as sent
 *	DELETED	name length (1), name: the room's current life ends
 *	ROOM	(version 1 logs) ROOM2 without life and createdAt
 *	CHAT	(version 1 logs) CHAT2 without life
 *
 * A room's life: every time a room is created (by a join, createRoom,
 * the default room of a run) it gets a life number larger than any in
 * the log, and its ROOM2 and CHAT2 records carry it. Replay follows the
 * newest life of each name: a record of a larger life than the room's
 * starts the room over (history and seq), one of a smaller life is
 * ignored. So a life that ended without a DELETED record (a room dropped
 * at restart after kill -9, the old --default-room) is never mistaken
 * for the next life of the same name. Version 1 records have life 0 and
 * replay as before; a server that finds a room of life 0 after replay
 * gives it a life and rewrites the log (compaction) at once, so records
 * of both kinds never mix for one room. Version 2 is written since lives
 * came in; an older vkws refuses a version 2 log (keeps it aside).
 *
 * Replay checks what the records say, not only their checksums: a chat
 * record must hold a valid UTF-8 JSON object of the chat shape for its
 * room and seq, and no seq may be 2^64-1 (the next would be 0). Records
 * that fail are not served; they are counted, logged, and the log is
 * kept aside as log.rejected-MS for a human before a new one is written.
 *
 * The codec does no I/O and no allocation; vkws_log_scan() reads a file
 * through one static buffer.
 */
#ifndef VKWS_STORE_H
#define VKWS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "vkws.h"

enum {
	VKWS_REC_HEADER = 1,	/* magic and version */
	VKWS_REC_ROOM = 2,	/* a room created, or its settings changed */
	VKWS_REC_CHAT = 3,	/* a stored chat message */
	VKWS_REC_DELETED = 4,	/* a room deleted or removed: seq starts over */
	VKWS_REC_ROOM2 = 5,	/* ROOM with life and createdAt */
	VKWS_REC_CHAT2 = 6	/* CHAT with life */
};

/* The format version written in the header record, and the oldest one
 * still read. */
#define VKWS_LOG_VERSION 2
#define VKWS_LOG_VERSION_MIN 1
/* Bytes of the fixed part of a record before a chat frame: the header,
 * the name with its length, and the largest fixed fields (a ROOM2's). */
#define VKWS_REC_FIXED (VKWS_REC_HEAD + 1 + VKWS_ROOM_NAME_MAX + 4 + 1 + \
    8 + 8 + 8)
/* The resync scan past a bad record checksums at most this many bytes
 * per byte it scans (plus one largest record): a damaged tail crafted to
 * look like records at every offset costs linear time, and a scan that
 * runs out of budget counts as damage (the file is kept aside). */
#define VKWS_SCAN_CRC_FACTOR 4

/* Errors of vkws_rec_decode() and vkws_log_scan(). */
enum {
	VKWS_REC_EBADLEN = -1,	/* length 0 or over VKWS_REC_MAX */
	VKWS_REC_EBADTYPE = -2,	/* unknown type */
	VKWS_REC_ECRC = -3,	/* checksum does not match */
	VKWS_REC_EPAYLOAD = -4,	/* fields do not fill the payload exactly */
	VKWS_REC_ETORN = -5,	/* the file ends inside a record */
	VKWS_REC_ENOHEAD = -6	/* the file does not start with a header */
};

/* One record. Pointers point into the decoded buffer. The decoder gives
 * ROOM2 and CHAT2 as ROOM and CHAT with legacy 0, version 1 records with
 * legacy 1 (and life 0); the encoder writes ROOM and CHAT as ROOM2 and
 * CHAT2 unless legacy is set. */
struct vkws_rec {
	int type;		/* VKWS_REC_* */
	int legacy;		/* ROOM, CHAT: the version 1 layout */
	uint64_t life;		/* ROOM, CHAT: the room's life, 0 legacy */
	int64_t created_at;	/* ROOM: wall ms, 0 unknown (legacy) */
	const char *room;	/* ROOM, CHAT, DELETED */
	size_t room_len;
	uint64_t seq;		/* ROOM, CHAT */
	uint32_t max_clients;	/* ROOM */
	int persistent;		/* ROOM */
	const char *frame;	/* CHAT */
	size_t frame_len;
	uint32_t version;	/* HEADER */
};

/* CRC-32 of p[0..n) continuing crc (0 to start). */
uint32_t vkws_crc32(uint32_t crc, const void *p, size_t n);

/*
 * Encode r: its record header and payload up to the chat frame go to
 * head (VKWS_REC_FIXED bytes at most); the frame, if any, follows head
 * on disk as it is. Returns the bytes written to head, or 0 if r does not
 * fit a record (name length, payload over VKWS_REC_MAX).
 */
size_t vkws_rec_encode(uint8_t *head, const struct vkws_rec *r);

/*
 * Decode the record at p[0..n): the bytes it takes, 0 if p holds only a
 * prefix of a record (need more), or a negative VKWS_REC_E*. The length
 * is checked before anything waits for more, so a bad length never makes
 * the caller read up to 4 GB.
 */
int vkws_rec_decode(const uint8_t *p, size_t n, struct vkws_rec *r);

/* What vkws_log_scan() found. */
struct vkws_scan {
	uint64_t size;		/* bytes in the file */
	uint64_t good;		/* end of the last good record */
	uint64_t records;	/* good records, each given to fn */
	int err;		/* 0, or why the record at good is bad */
	uint64_t next_good;	/* err: offset of a good record after good,
				 * 0 if none (a torn tail) */
	int gave_up;		/* err: the resync scan ran out of budget
				 * (VKWS_SCAN_CRC_FACTOR): damage, not torn */
	uint64_t crc_bytes;	/* bytes checksummed by the resync scan */
};

typedef void vkws_rec_fn(const struct vkws_rec *r, void *arg);

/*
 * Replay the log open at fd: fn for each good record in file order, up to
 * the first bad or torn one, then look past it for a good record (so a
 * corrupt middle is not mistaken for a torn tail). The first record must
 * be a header record (else VKWS_REC_ENOHEAD and fn is never called).
 * Returns 0, or -1 with errno if the file could not be read.
 */
int vkws_log_scan(int fd, vkws_rec_fn *fn, void *arg, struct vkws_scan *out);

/* What the log has done since start, for /metrics. */
struct vkws_store_stats {
	uint64_t records;	/* records appended */
	uint64_t bytes;		/* bytes appended (not counting compaction) */
	uint64_t syncs;		/* fdatasync and fsync calls */
	uint64_t compactions;	/* compactions that replaced the log */
	uint64_t failures;	/* writes and syncs that failed */
	uint64_t log_bytes;	/* size of the log now */
	int broken;		/* 1 while chat is refused with -7 */
};
void vkws_store_get_stats(struct vkws_store_stats *out);

/* Static bytes of the storage layer, for --budget. */
size_t vkws_store_static_size(void);

#endif
