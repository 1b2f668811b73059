/* One fuzzer input, checked (progen_fuzz.h). */
#include "progen_fuzz.h"

#include "progen_check.h"

#include <stdlib.h>
#include <string.h>

void progen_fuzz_decode(const uint8_t *data, size_t len, progen_fuzz_cfg *cfg)
{
    uint8_t h[PROGEN_FUZZ_HEAD] = {0};
    memcpy(h, data, len < sizeof h ? len : sizeof h);
    cfg->invalid = h[0] & 1;
    cfg->isa = (h[0] & 2) && duet_isa_best() == DUET_ISA_AVX2 ? DUET_ISA_AVX2 : DUET_ISA_SCALAR;
    cfg->threads = h[0] & 4 ? 2 : 1;
    /* Bits above the pass masks: clear in the corpus files made before
     * they meant anything, so those still decode to the programs that
     * found their bugs. */
    cfg->grad = (h[2] & 0x08) != 0;
    cfg->dnn = (h[2] & 0x10) != 0;
    cfg->disable[0] = (unsigned)(h[1] | h[2] << 8) & DUET_PASS_ALL;
    cfg->disable[1] = (unsigned)(h[3] | h[4] << 8) & DUET_PASS_ALL;
    /* FNV-1a: every byte moves the input values, so the fuzzer reaches
     * other values without a field of its own for them. */
    uint64_t x = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        x = (x ^ data[i]) * 0x100000001b3ULL;
    cfg->seed = x;
}

bool progen_fuzz_one(const uint8_t *data, size_t len, duet_isa isa, const char *origin,
                     bool verbose)
{
    progen_fuzz_cfg cfg;
    progen_fuzz_decode(data, len, &cfg);
    if (isa != DUET_ISA_AUTO)
        cfg.isa = isa;
    progen_prog *p = malloc(sizeof *p);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", origin);
        return false;
    }
    progen_src src;
    size_t head = len < PROGEN_FUZZ_HEAD ? len : PROGEN_FUZZ_HEAD;
    progen_src_bytes(&src, data + head, len - head);
    progen_generate(p, &src, (cfg.invalid ? PROGEN_INVALID : 0) | (cfg.dnn ? PROGEN_DNN : 0) |
                                 (cfg.grad ? PROGEN_GRAD : 0));

    char what[320], pn[2][160];
    snprintf(what, sizeof what,
             "%s (%s program%s%s, ISA %s, %d thread(s), passes disabled %s, then %s)",
             origin, cfg.invalid ? "invalid" : "valid", cfg.dnn ? " with oneDNN ops" : "",
             cfg.grad && !cfg.invalid ? ", a training step" : "",
             duet_isa_name(cfg.isa), cfg.threads,
             progen_pass_names(cfg.disable[0], pn[0], sizeof pn[0]),
             progen_pass_names(cfg.disable[1], pn[1], sizeof pn[1]));
    if (verbose)
        printf("%s\n", what);
    duet_ctx_options o;
    memset(&o, 0, sizeof o);
    o.isa = cfg.isa;
    o.num_threads = cfg.threads;
    duet_ctx *ctx = duet_ctx_create(&o);
    if (!ctx) {
        fprintf(stderr, "%s: duet_ctx_create failed\n", what);
        free(p);
        return false;
    }
    progen_check c = {p, cfg.seed, what, cfg.disable, 2, true, verbose, NULL};
    bool ok = cfg.invalid ? progen_check_invalid(ctx, &c) : progen_check_valid(ctx, &c);
    /* After a failure the check may have left tensors behind on purpose
     * (it stops at the first difference); only a passing run must be clean. */
    if (ok)
        ok = progen_check_clean(ctx, what);
    duet_ctx_destroy(ctx);
    free(p);
    return ok;
}
