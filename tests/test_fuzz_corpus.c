/*
 * The differential fuzzer's regression corpus, replayed without libFuzzer:
 * every file of tests/fuzz/corpus/ (one per bug the fuzzer found, named
 * after it) goes through the fuzzer's own check function
 * (tests/common/progen_fuzz.h), and so do a few dozen built-in inputs that
 * reach every set-up the first byte can ask for (valid or invalid, scalar
 * or AVX2, 1 or 2 threads) under random pass sets, with and without
 * oneDNN's ops and training steps (byte 2).
 *
 * Under `make test` the ISA follows $DUET_ISA, so each file runs under both
 * kernel tables whatever it asks for; with $DUET_ISA unset, an input's own
 * choice holds. DUET_PAR_MIN_WORK is 64 unless set, as under make fuzz.
 *
 * Environment: DUET_FUZZ_CORPUS, the folder (default tests/fuzz/corpus,
 * relative to the tree's root, where make runs the tests);
 * DUET_FUZZ_VERBOSE=1 prints each program.
 *
 * With arguments, replays those files instead (a crash file of
 * `make fuzz`, say), printing each set-up and program, and exits 1 if one
 * fails: `build/tests/test_fuzz_corpus build/fuzz/crash-...`.
 */
#include "common/progen_fuzz.h"
#include "common/testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_INPUT (1 << 16) /* make fuzz caps inputs at 4096 bytes */

static duet_isa env_isa(void)
{
    const char *e = getenv("DUET_ISA");
    if (e && strcmp(e, "scalar") == 0)
        return DUET_ISA_SCALAR;
    if (e && strcmp(e, "avx2") == 0)
        return DUET_ISA_AVX2;
    return DUET_ISA_AUTO;
}

static bool env_verbose(void)
{
    const char *e = getenv("DUET_FUZZ_VERBOSE");
    return e && *e && strcmp(e, "0") != 0;
}

/* The bytes of file path into buf; its length, or -1 (said why). */
static long read_input(const char *path, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    size_t n = fread(buf, 1, FUZZ_MAX_INPUT, f);
    bool more = fgetc(f) != EOF, err = ferror(f) != 0;
    fclose(f);
    if (more || err) {
        fprintf(stderr, "%s: %s\n", path, err ? "read error" : "longer than 64 KiB");
        return -1;
    }
    return (long)n;
}

static bool replay_file(const char *path, bool verbose)
{
    static uint8_t buf[FUZZ_MAX_INPUT];
    long n = read_input(path, buf);
    return n >= 0 && progen_fuzz_one(buf, (size_t)n, env_isa(), path, verbose);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(t_corpus)
{
    const char *dir = getenv("DUET_FUZZ_CORPUS");
    if (!dir || !*dir)
        dir = "tests/fuzz/corpus";
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open the corpus folder %s (run from the tree's root, or "
                  "set DUET_FUZZ_CORPUS)", dir);
    char *names[1024];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        ck_assert_msg(n < 1024, "more than 1024 files in %s", dir);
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        ck_assert_ptr_nonnull(names[n]);
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        if (!replay_file(names[i], env_verbose())) {
            fprintf(stderr, "corpus file %s FAILED\n", names[i]);
            failed++;
        }
        free(names[i]);
    }
    printf("fuzz corpus: %d files from %s, %d failed\n", n, dir, failed);
    ck_assert_msg(failed == 0, "%d of %d corpus files failed (see above)", failed, n);
}
END_TEST

/* Every set-up of the first byte, each on a few random programs and pass
 * sets, and the empty input: the check path runs under make test even
 * while the corpus is small. */
START_TEST(t_builtin)
{
    tu_rng r = tu_seed(2026);
    int n = 0, failed = 0;
    uint8_t buf[600];
    failed += !progen_fuzz_one(buf, 0, env_isa(), "the empty input", env_verbose());
    n++;
    for (int setup = 0; setup < 8; setup++)
        for (int k = 0; k < 4; k++) {
            size_t len = (size_t)tu_int(&r, PROGEN_FUZZ_HEAD, (int)sizeof buf);
            for (size_t j = 0; j < len; j++)
                buf[j] = (uint8_t)tu_next(&r);
            buf[0] = (uint8_t)setup;
            if (k == 0) { /* all passes on, then all off */
                buf[1] = buf[2] = 0;
                buf[3] = buf[4] = 0xff;
            } else if (k == 1) { /* a training step with oneDNN's ops */
                buf[2] |= 0x18;
            }
            char origin[96];
            snprintf(origin, sizeof origin, "built-in input %d (set-up %d, %zu bytes)", n, setup,
                     len);
            failed += !progen_fuzz_one(buf, len, env_isa(), origin, env_verbose());
            n++;
        }
    printf("fuzz built-in inputs: %d, %d failed\n", n, failed);
    ck_assert_msg(failed == 0, "%d of %d built-in inputs failed (see above)", failed, n);
}
END_TEST

int main(int argc, char **argv)
{
    /* As under make fuzz: with 2 threads, progen's small values are split
     * across the team too, so an input that found a bug in a split path
     * reproduces here (unless the caller set another threshold). */
    setenv("DUET_PAR_MIN_WORK", "64", 0);
    if (argc > 1) {
        int failed = 0;
        for (int i = 1; i < argc; i++) {
            bool ok = replay_file(argv[i], true);
            printf("%s: %s\n", argv[i], ok ? "ok" : "FAILED");
            failed += !ok;
        }
        return failed ? 1 : 0;
    }
    Suite *s = suite_create("fuzz_corpus");
    TCase *tc = tcase_create("corpus");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, t_corpus);
    tcase_add_test(tc, t_builtin);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
