#include "idxfile.h"

#include <check.h>
#include <stdio.h>
#include <zlib.h>

void tu_put_file(const char *path, const void *bytes, size_t n, int gz)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        ck_assert_ptr_nonnull(g);
        if (n)
            ck_assert_int_eq(gzwrite(g, bytes, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

size_t tu_idx_header(unsigned char *h, int type, int ndim, const uint32_t *dims)
{
    h[0] = 0, h[1] = 0, h[2] = (unsigned char)type, h[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++)
            h[4 + 4 * d + b] = (unsigned char)(dims[d] >> (24 - 8 * b));
    return 4 + 4 * (size_t)ndim;
}
