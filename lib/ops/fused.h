/*
 * Fused elementwise execution: a short program of unary / binary / scalar
 * ops over up to DUET_FUSED_MAX_INPUTS strided inputs, run in one pass over
 * memory, tile by tile, so intermediates live in L1-sized tile buffers (or,
 * along a chain, in vector registers) instead of full tensors. Each tile
 * goes to the table's fused_block kernel, which evaluates every instruction
 * with the same per-element code as kt->unary[op] / kt->binary[op], so a
 * fused result is bitwise the eager chain's result under the same table
 * (NaN sign and payload excepted: not specified, and not even the same
 * across one eager AVX2 add). Independent of any graph IR: graph mode
 * lowers to this.
 *
 * Registers: 0..ninputs-1 are the inputs; instruction i writes register
 * ninputs + i. One register is the output, written to contiguous memory.
 */
#ifndef DUET_FUSED_H
#define DUET_FUSED_H

#include "ops.h"

#define DUET_FUSED_MAX_INPUTS 8
#define DUET_FUSED_MAX_INSTRS 32
#define DUET_FUSED_MAX_REGS (DUET_FUSED_MAX_INPUTS + DUET_FUSED_MAX_INSTRS)
/* Stack floats for tile buffers: 16 KiB, half of this machine's 32 KiB L1d,
 * leaving the other half to the input/output lines streaming through. The
 * tile length is the largest power of two <= DUET_FUSED_TILE_MAX with all
 * live buffers inside this budget: the slots, one per input (broadcast,
 * gathered or padded) and a padded output (512 for up to 8 buffers, 64 at
 * worst). 512 was measured best for the earlier per-kernel executor
 * (24-27 ms against 28-34 at 256 and 2048 on the 8-op chain); it has not
 * been re-tuned for the register-chained evaluator. */
#define DUET_FUSED_SCRATCH_FLOATS 4096
#define DUET_FUSED_TILE_MAX 512

typedef enum {
    /* the kernels' step kinds (kernels.h), so a kind passes through as is */
    DUET_FUSED_UNARY = DUET_FSTEP_UNARY,           /* r = unary[op](a) */
    DUET_FUSED_BINARY = DUET_FSTEP_BINARY,         /* r = binary[op](a, b) */
    DUET_FUSED_SCALAR_RHS = DUET_FSTEP_SCALAR_RHS, /* r = binary[op](a, c): duet_<op>_scalar */
    DUET_FUSED_SCALAR_LHS = DUET_FSTEP_SCALAR_LHS, /* r = binary[op](c, a): c op a, e.g. 1 - x */
    DUET_FUSED_KIND_COUNT
} duet_fused_kind;

typedef struct duet_fused_instr {
    int kind; /* duet_fused_kind */
    int op;   /* duet_unary_op for UNARY, duet_binary_op otherwise */
    int a, b; /* source registers (b only for BINARY) */
    float c;  /* the constant of the SCALAR kinds */
} duet_fused_instr;

typedef struct duet_fused_input {
    const float *base;
    int64_t strides[DUET_MAX_DIMS]; /* elements, over the output shape; 0: broadcast */
} duet_fused_input;

typedef struct duet_fused_prog {
    int ninputs, ninstrs, out;
    duet_fused_input in[DUET_FUSED_MAX_INPUTS];
    duet_fused_instr code[DUET_FUSED_MAX_INSTRS];

    /* Filled by duet_fused_prepare: the tile slot each instruction writes
     * (-1: its result is never used, so it is skipped; -2: the output
     * memory itself), the number of tile slots, and how often each input is
     * read (informational: every input not at unit stride is gathered once
     * per tile). */
    int8_t slot[DUET_FUSED_MAX_INSTRS];
    int nslots;
    uint8_t in_uses[DUET_FUSED_MAX_INPUTS];
    /* The executed instructions as the kernels' fused_block runs them
     * (registers: inputs, then the output, then the tile slots), with the
     * chain flags (DUET_FSTEP_A_PREV, DUET_FSTEP_KEEP): a result read only
     * as the next instruction's first operand never reaches memory. */
    duet_fused_code kcode;
    bool prepared;
} duet_fused_prog;

/* Validate p and plan its tile slots (liveness over the instruction list:
 * a slot is reused once its register's last reader has run, by that reader
 * itself when possible, since elementwise kernels work in place on unit
 * stride). Returns DUET_OK, or DUET_ERR_ARG for a ninputs outside
 * 1..DUET_FUSED_MAX_INPUTS, ninstrs outside 0..DUET_FUSED_MAX_INSTRS, an
 * unknown kind or op, a source register not yet written (out of range or
 * not before the instruction), or an output register out of range. The
 * input bases and strides are not looked at: they may change between
 * prepare and each exec. */
duet_status duet_fused_prepare(duet_fused_prog *p);

/* Run a prepared p over shape into contiguous out, which must not overlap
 * any input except exactly: out may be the memory of an input read at
 * out's own contiguous strides (a matmul epilogue runs in place over the
 * product; each block reads its inputs before its output is written, and
 * a step may write over a register it reads). Never fails, never
 * allocates: tile buffers are on the stack (DUET_FUSED_SCRATCH_FLOATS
 * floats; a program with more than 8 live buffers gets shorter tiles, down
 * to 64 floats for 41). Unit-stride inputs
 * are read in place and the output written in place, except the last
 * < DUET_FUSED_LANES elements of each row, which run zero-padded through a
 * buffer; kt->fused_block must be set. */
void duet_exec_fused(const duet_kernels *kt, int threads, const duet_fused_prog *p, int ndim,
                     const int64_t *shape, float *out);

#endif
