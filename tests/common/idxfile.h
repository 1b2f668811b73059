/*
 * Writing IDX files (MNIST's format) for the data tests: tests/test_data.c
 * and the catalogue's data-file rows (tests/test_errors_modes.c).
 */
#ifndef DUET_IDXFILE_H
#define DUET_IDXFILE_H

#include <stddef.h>
#include <stdint.h>

/* Write bytes to path, gzip-compressed when gz (Check assertions on failure). */
void tu_put_file(const char *path, const void *bytes, size_t n, int gz);
/* An IDX header: 0 0 type ndim, then each dim big-endian. Returns its length
 * (4 + 4 * ndim bytes written to h). */
size_t tu_idx_header(unsigned char *h, int type, int ndim, const uint32_t *dims);

#endif
