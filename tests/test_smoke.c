/* Placeholder smoke test replaced by real suites. */
#include "testutil.h"
START_TEST(t_smoke)
{
    duet_ctx *ctx = tu_ctx();
    duet_tensor *a = duet_ones(ctx, DUET_F32, 1, (int64_t[]){3});
    duet_tensor *b = duet_add(ctx, a, a);
    float v[3];
    ck_assert_int_eq(duet_read(ctx, b, v, sizeof v), DUET_OK);
    ck_assert(v[0] == 2.0f && v[2] == 2.0f);
    duet_release(ctx, a);
    duet_release(ctx, b);
    tu_ctx_done(ctx);
}
END_TEST
int main(void)
{
    Suite *s = suite_create("smoke");
    TCase *tc = tcase_create("smoke");
    tcase_add_test(tc, t_smoke);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
