/* hello — duet's eager mode on small tensors: make two tensors, add,
 * multiply, apply tanh, read the result back, free everything with a scope. */
#include <duet.h>
#include <stdio.h>

int main(void)
{
    duet_ctx *ctx = duet_ctx_create(NULL);
    if (!ctx) {
        fprintf(stderr, "hello: cannot create a duet context\n");
        return 1;
    }
    printf("duet %s, kernels: %s\n", duet_version(), duet_isa_name(duet_ctx_isa(ctx)));

    duet_scope_begin(ctx);
    const float av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {0.5f, -1, 2};
    duet_tensor *a = duet_from_data(ctx, DUET_F32, 2, (int64_t[]){2, 3}, av);
    duet_tensor *b = duet_from_data(ctx, DUET_F32, 1, (int64_t[]){3}, bv);
    duet_tensor *y = duet_tanh(ctx, duet_mul(ctx, duet_add(ctx, a, b), b)); /* b broadcasts */
    float out[6];
    if (!y || duet_read(ctx, y, out, sizeof out) != DUET_OK) {
        fprintf(stderr, "hello: %s\n", duet_error_message(ctx));
        duet_ctx_destroy(ctx);
        return 1;
    }
    printf("tanh((a + b) * b) =\n");
    for (int i = 0; i < 2; i++)
        printf("  % .5f % .5f % .5f\n", out[3 * i], out[3 * i + 1], out[3 * i + 2]);

    /* An error: shapes that cannot broadcast. Nothing is allocated, the
     * message names the op and both shapes. */
    duet_tensor *bad = duet_add(ctx, a, duet_ones(ctx, DUET_F32, 1, (int64_t[]){4}));
    printf("duet_add([2,3], [4]) -> %s: %s\n", bad ? "tensor" : "NULL", duet_error_message(ctx));
    duet_scope_end(ctx); /* releases a, b, y and every temporary */

    duet_ctx_destroy(ctx);
    return 0;
}
