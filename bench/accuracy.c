/* Accuracy suite: placeholder until the full sweep lands (see docs/kernels.md). */
#include "bench.h"

int bench_accuracy(const bench_opts *o)
{
    (void)o;
    printf("accuracy: not implemented yet\n");
    return 0;
}
