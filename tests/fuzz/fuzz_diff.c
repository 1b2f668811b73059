/*
 * The differential fuzzer: a libFuzzer target (`make fuzz`). Each input
 * decodes into a random program (tests/common/progen.h) and a set-up (pass
 * sets, ISA, thread count, valid or with one invalid call:
 * tests/common/progen_fuzz.h); the program runs eagerly and as traced,
 * compiled graphs, and any disagreement aborts, so libFuzzer keeps the
 * input as a crash file. ASan and UBSan (this target and the library are
 * built with them) turn out-of-bounds accesses and undefined behaviour into
 * crashes too, and LeakSanitizer reports what an input leaked.
 *
 * Replay a crash file with this binary (`build/fuzz/fuzz_diff FILE`) or,
 * built without libFuzzer under gcc, `build/tests/test_fuzz_corpus FILE`;
 * once fixed, it joins tests/fuzz/corpus/ (docs/testing.md).
 */
#include "progen_fuzz.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!progen_fuzz_one(data, size, DUET_ISA_AUTO, "fuzz input", false)) {
        fprintf(stderr, "fuzz_diff: eager and graph disagree (or a check failed): see above\n");
        abort();
    }
    return 0;
}
