/*
 * fuzz_store.c: the log replay. The input is a log file's bytes.
 * Properties: vkws_rec_decode() never reads past its input and takes
 * 0 (need more) for a prefix of a good record; a record it accepts encodes back
 * to exactly the bytes it came from; and vkws_log_scan() over the same
 * bytes in a file agrees with decoding them in memory on where the good
 * records end.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "store.h"

static uint64_t scanned;

static void
count(const struct vkws_rec *r, void *arg)
{
	(void)r;
	(void)arg;
	scanned++;
}

/* Decode what the memory holds, record by record, as replay does. */
static size_t
decode_all(const uint8_t *p, size_t n, uint64_t *records)
{
	static uint8_t head[VKWS_REC_FIXED];
	size_t off = 0;

	*records = 0;
	while (off < n) {
		struct vkws_rec r;
		int k = vkws_rec_decode(p + off, n - off, &r);
		size_t hn;

		if (k <= 0)
			break;
		/* The first record of a log must be its header. */
		if (off == 0 && r.type != VKWS_REC_HEADER)
			break;
		hn = vkws_rec_encode(head, &r);
		FUZZ_CHECK(hn > 0 && hn + (r.type == VKWS_REC_CHAT ?
		    r.frame_len : 0) == (size_t)k);
		FUZZ_CHECK(memcmp(head, p + off, hn) == 0);
		if (r.type == VKWS_REC_CHAT)
			FUZZ_CHECK(memcmp(r.frame, p + off + hn,
			    r.frame_len) == 0);
		off += (size_t)k;
		(*records)++;
	}
	return off;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/vkws-fuzz-store.XXXXXX";
	struct vkws_scan sc;
	uint64_t records;
	size_t good = decode_all(data, size, &records);
	int fd, r;

	/* Every prefix of the first good record asks for more. */
	if (good > 0) {
		struct vkws_rec rec;
		int first = vkws_rec_decode(data, size, &rec);
		size_t cut = (size_t)data[size - 1] % (size_t)first;
		FUZZ_CHECK(vkws_rec_decode(data, cut, &rec) == 0);
	}
	if ((fd = mkstemp(path)) < 0)
		return 0;
	unlink(path);
	if (write(fd, data, size) == (ssize_t)size &&
	    lseek(fd, 0, SEEK_SET) == 0) {
		scanned = 0;
		r = vkws_log_scan(fd, count, NULL, &sc);
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(sc.size == size);
		FUZZ_CHECK(sc.good == good && sc.records == records);
		FUZZ_CHECK(scanned == records);
		FUZZ_CHECK((sc.err == 0) == (good == size));
	}
	close(fd);
	return 0;
}
