/*
 * One fuzzer input, checked: the check function of the differential
 * fuzzer (tests/fuzz/fuzz_diff.c, a libFuzzer target) and of the replay of
 * its regression corpus (tests/test_fuzz_corpus.c, built without libFuzzer).
 *
 * An input is PROGEN_FUZZ_HEAD bytes of set-up, then the bytes progen
 * decodes into a program (any string decodes to one; missing bytes read as
 * zeros, so the empty input is a valid case too):
 *
 *   byte 0     bit 0: plant an invalid call (PROGEN_INVALID)
 *              bit 1: the AVX2 kernels (scalar when the machine lacks AVX2)
 *              bit 2: a context of 2 threads (else 1)
 *   bytes 1-2  DUET_PASS_* bits to disable for the first graph (little endian,
 *              masked with DUET_PASS_ALL); the invalid call is traced with it;
 *              above them, in byte 2: bit 3 a training step (PROGEN_GRAD,
 *              valid programs), bit 4 conv, pooling and batch norm among the
 *              ops (PROGEN_DNN)
 *   bytes 3-4  the same for a second graph, traced and replayed while the
 *              first is alive
 *
 * Input values are drawn from a hash of the whole input.
 */
#ifndef DUET_PROGEN_FUZZ_H
#define DUET_PROGEN_FUZZ_H

#include "progen.h"

#define PROGEN_FUZZ_HEAD 5

typedef struct progen_fuzz_cfg {
    bool invalid;
    duet_isa isa;       /* DUET_ISA_SCALAR or DUET_ISA_AVX2 */
    int threads;        /* 1 or 2 */
    bool dnn;           /* PROGEN_DNN */
    bool grad;          /* PROGEN_GRAD */
    unsigned disable[2];
    uint64_t seed;      /* the inputs' values */
} progen_fuzz_cfg;

/* The set-up an input asks for (the ISA as the machine allows it). */
void progen_fuzz_decode(const uint8_t *data, size_t len, progen_fuzz_cfg *cfg);

/* Check one input: generate its program, run it eagerly and traced in a
 * new context (progen_check.h), and check the context is left empty.
 * isa: DUET_ISA_AUTO for the input's choice, else this one (the corpus
 * replay follows $DUET_ISA). origin names the input in reports. verbose
 * prints the set-up and the program to stdout first. True if all agreed;
 * otherwise the failure is on stderr. */
bool progen_fuzz_one(const uint8_t *data, size_t len, duet_isa isa, const char *origin,
                     bool verbose);

#endif
