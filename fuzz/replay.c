/*
 * replay.c: a main() for the fuzz targets without libFuzzer. It runs
 * LLVMFuzzerTestOneInput() on every regular file of each directory (or on
 * each file) named on the command line, by default the target's committed
 * corpus fuzz/corpus/FUZZ_NAME, so the corpus is a regression test under
 * gcc, the sanitizers and qemu alike. Prints "N passed, N failed"; a
 * failed property aborts (see fuzz.h), so every input that returns has
 * passed. Test code: not part of the server.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#define FUZZ_NAME "unknown"
#endif

/* One input at a time, read whole; an input is at most FUZZ_MAX_INPUT
 * bytes, like libFuzzer's -max_len. */
static uint8_t input[FUZZ_MAX_INPUT + 1];
/* File names of one directory, sorted so runs are repeatable. */
#define REPLAY_MAX_FILES 4096
#define REPLAY_NAME_MAX 512
static char names[REPLAY_MAX_FILES][REPLAY_NAME_MAX];

static int npass, nfail;

static int
cmp_name(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	uint8_t *copy;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		nfail++;
		return;
	}
	n = fread(input, 1, sizeof(input), f);
	fclose(f);
	if (n > FUZZ_MAX_INPUT) {
		fprintf(stderr, "%s: longer than %d bytes\n", path,
		    FUZZ_MAX_INPUT);
		nfail++;
		return;
	}
	/* A copy of exactly n bytes, so ASan sees any read past the input
	 * as libFuzzer would. */
	copy = malloc(n ? n : 1);
	if (copy == NULL) {
		nfail++;
		return;
	}
	memcpy(copy, input, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	npass++;
}

static void
run_path(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	size_t n = 0, i;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		nfail++;
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		nfail++;
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == REPLAY_MAX_FILES) {
			fprintf(stderr, "%s: more than %d files\n", path,
			    REPLAY_MAX_FILES);
			nfail++;
			break;
		}
		if (snprintf(names[n], REPLAY_NAME_MAX, "%s/%s", path,
		    e->d_name) >= REPLAY_NAME_MAX) {
			nfail++;
			continue;
		}
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_name);
	for (i = 0; i < n; i++) {
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			run_file(names[i]);
	}
}

int
main(int argc, char **argv)
{
	int i;

	if (argc < 2)
		run_path("fuzz/corpus/" FUZZ_NAME);
	for (i = 1; i < argc; i++)
		run_path(argv[i]);
	/* An empty corpus tests nothing: count it as a failure. */
	if (npass == 0 && nfail == 0) {
		fprintf(stderr, "replay_%s: no inputs\n", FUZZ_NAME);
		nfail = 1;
	}
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
