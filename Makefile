# duet — build, test, bench, install.
#
#   make            static + shared library in build/
#   make demo       the main demo (installs missing Debian packages first)
#   make test       the Check suite under DUET_ISA=scalar and DUET_ISA=avx2,
#                   the check that docs/api.md covers include/duet.h, and that
#                   docs/errors.md matches the bad-input catalogue's run
#   make sanitize   the suite built with ASan + UBSan
#   make tsan       tests/test_threads, test_par and test_interop built with ThreadSanitizer
#                   (library too), under both ISAs, and the threaded reductions of test_par_reduce
#   make test-threads  the suite on 1, 2 and 4 threads with nearly every op split
#   make valgrind   the suite under valgrind memcheck
#   make test-noavx2  the suite on an emulated CPU without AVX (qemu-user, -cpu Nehalem)
#   make fuzz       the differential fuzzer (eager vs graph, libFuzzer + ASan + UBSan, clang)
#                   for FUZZ_TIME seconds (default 60), in build/fuzz; prints programs/second
#   make bench      benchmarks: tables on stdout, CSV (and a plot) in bench/results/
#   make breakdown  where one eager op's time goes: the library built with phase
#                   timing (PHASES=1) in build/phases, its test, then the bench suite
#   make install PREFIX=/usr/local
#
# Variables: CC (gcc or clang), BUILD (output folder), EXTRA_CFLAGS, V=1 (show commands),
# PHASES=1 (eager phase timing, lib/core/phase.h; builds into build/phases by default).

CC      ?= cc
# An instrumented library must never land in the default build folder: the
# objects do not record the flags they were made with.
BUILD   ?= $(if $(PHASES),build/phases,build)
PREFIX  ?= /usr/local
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

Q := $(if $(V),,@)

VERSION := 0.1.0
SOMAJOR := 0

# zlib reads the gzip-compressed IDX files of lib/data; dataset-fashion-mnist
# is the data the training examples and tests/test_data.c read, so it is
# required, not optional: a test that skips because its data is missing
# would pass without checking anything.
DEB_PKGS := libopenblas-dev libopenblas0-openmp libdnnl-dev check pkg-config zlib1g-dev \
            dataset-fashion-mnist
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

# pkg-config may itself be missing before `deps` runs; these are evaluated lazily.
BLAS_CFLAGS = $(shell pkg-config --cflags openblas 2>/dev/null)
# OpenBLAS's OpenMP build, which shares libgomp's threads with oneDNN: with
# Debian's default pthreads build, each library's idle threads spin while
# the other's run, and a CNN with a matmul head ran 3x slower on 2 threads
# (bench cnn; ../shared/machine-facts.md measured the same trap). Linked by
# path with an rpath, so the system's BLAS alternative is left alone.
OPENBLAS_OMP_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_LIBS   = $(if $(wildcard $(OPENBLAS_OMP_DIR)/libopenblas.so.0),$(OPENBLAS_OMP_DIR)/libopenblas.so.0 -Wl$(comma)-rpath$(comma)$(OPENBLAS_OMP_DIR),$(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas))
comma := ,
CHECK_LIBS  = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)
# oneDNN runs on OpenMP (libgomp); duet sets its thread count per call.
DNNL_LIBS   := -ldnnl -lgomp

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
PHASE_FLAGS := $(if $(PHASES),-DDUET_PHASE_TIMING)
CFLAGS_BASE := -std=c11 -D_DEFAULT_SOURCE -O2 -g $(WARN) -fPIC -fvisibility=hidden -Iinclude $(PHASE_FLAGS)
AVX2_FLAGS  := -mavx2 -mfma

LIB_SRC  := $(sort $(wildcard lib/*/*.c lib/*/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_HDR  := $(wildcard include/*.h lib/*/*.h lib/*/*/*.h)

TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON := $(wildcard tests/common/*.c)

BENCH_SRC := $(sort $(wildcard bench/*.c))
EX_SRC   := $(sort $(wildcard examples/*.c))
EX_BIN   := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)

STATIC := $(BUILD)/libduet.a
SHARED := $(BUILD)/libduet.so.$(VERSION)
DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: soak fuzz fuzz-build tsan test-threads check-api-doc check-errors-doc breakdown breakdown-test test-noavx2 all deps demo test test-scalar test-avx2 sanitize valgrind bench install uninstall clean examples

all: $(STATIC) $(SHARED)

# ---- dependencies: installed from Debian when missing --------------------------
# The stamp depends on the Makefile so that a new dependency is checked in
# trees that were already built.
$(DEPS_STAMP): Makefile
	@mkdir -p $(BUILD)
	@missing=""; \
	pkg-config --version >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	pkg-config --exists openblas 2>/dev/null || missing="$$missing libopenblas-dev"; \
	[ -f $(OPENBLAS_OMP_DIR)/libopenblas.so.0 ] || missing="$$missing libopenblas0-openmp"; \
	pkg-config --exists check 2>/dev/null || missing="$$missing check"; \
	[ -f /usr/include/dnnl.h ] || missing="$$missing libdnnl-dev"; \
	[ -f /usr/include/zlib.h ] || missing="$$missing zlib1g-dev"; \
	[ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "duet: installing missing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS) >/dev/null || exit 1; \
	  else \
	    echo "duet: missing packages:$$missing"; \
	    echo "duet: install them with: sudo apt-get install $(DEB_PKGS)"; exit 1; \
	  fi; \
	fi
	@touch $@

deps: $(DEPS_STAMP)

# ---- library --------------------------------------------------------------------
$(BUILD)/obj/lib/kernels/avx2/%.o: lib/kernels/avx2/%.c $(LIB_HDR) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC [avx2] $<"
	$(Q)$(CC) $(CFLAGS_BASE) $(AVX2_FLAGS) $(BLAS_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(LIB_HDR) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	$(Q)$(CC) $(CFLAGS_BASE) $(BLAS_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	@echo "  AR $@"
	$(Q)ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	@echo "  LD $@"
	$(Q)$(CC) -shared -Wl,-soname,libduet.so.$(SOMAJOR) -o $@ $^ $(BLAS_LIBS) $(DNNL_LIBS) -lz -lm $(EXTRA_CFLAGS) $(EXTRA_LDFLAGS)
	$(Q)ln -sf libduet.so.$(VERSION) $(BUILD)/libduet.so.$(SOMAJOR)
	$(Q)ln -sf libduet.so.$(SOMAJOR) $(BUILD)/libduet.so

# Programs link the static library so they run from the tree without LD_LIBRARY_PATH.
LINK_LIBS = $(STATIC) $(BLAS_LIBS) $(DNNL_LIBS) -lz -lm -lpthread

# ---- tests --------------------------------------------------------------------------
$(BUILD)/tests/%: tests/%.c $(TEST_COMMON) $(wildcard tests/common/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(CFLAGS_BASE) -Itests/common -Ilib $(EXTRA_CFLAGS) $< $(TEST_COMMON) -o $@ $(LINK_LIBS) $(CHECK_LIBS) $(EXTRA_LDFLAGS)

# docs/api.md must name every DUET_API function of include/duet.h.
check-api-doc:
	@sh tests/check_api_doc.sh include/duet.h docs/api.md

# docs/errors.md's rows must be what the catalogue's tests print (example
# messages copied from a run), and name every function that takes a pointer.
check-errors-doc: $(BUILD)/tests/test_errors $(BUILD)/tests/test_errors_modes \
                  $(BUILD)/tests/test_errors_nan
	@$(TEST_ENV) sh tests/check_errors_doc.sh $(BUILD) include/duet.h docs/errors.md

# Each test binary runs under both kernel paths. AVX2 is skipped, loudly, only
# on a machine that lacks it.
# tests/run_tests.sh runs the binaries under both kernel tables, as many at
# once as there are CPUs (TEST_JOBS=1: one at a time), each one's output
# whole; the ones that use the thread team heavily run alone at the end.
TEST_ALONE := test_threads test_par test_par_reduce test_interop
test: check-api-doc check-errors-doc $(TEST_BIN)
	@TEST_ENV="$(TEST_ENV)" TEST_RUNNER="$(TEST_RUNNER)" TEST_ALONE="$(TEST_ALONE)" \
	  sh tests/run_tests.sh $(TEST_BIN)

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
sanitize:
	$(MAKE) BUILD=build/san EXTRA_CFLAGS="$(SAN_FLAGS)" EXTRA_LDFLAGS="$(SAN_FLAGS)" \
	  TEST_ENV="ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1" test

# gcc's TSan works with Check and libgomp here. libgomp, OpenBLAS and oneDNN
# are not instrumented: tests/tsan.supp lists what that makes TSan misread,
# each entry with its reason; duet's own frames are never suppressed.
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
TSAN_BUILD := build/tsan
# test_par_reduce's "core" case reaches every cut of the reductions across a
# team (~45 s of CPU under TSan); the cuts are the op layer's, the same under
# both kernel tables, so it runs under one. test_interop runs graph waves:
# steps of one wave on the team at once, so a wave over bytes one of its
# steps writes is a race TSan reports.
TSAN_TESTS := test_threads test_par test_interop
# history_size=7: the longest per-thread history, so that the stack of an
# access by uninstrumented code (OpenBLAS's memset) can be restored and
# matched by tests/tsan.supp. With the default, test_par_reduce's core case
# failed 2 runs of 2 on an eager matmul's C (OpenBLAS's memset on a team
# thread, then duet_add on the caller: "[failed to restore the stack]");
# with 7, 4 of 4 were clean under both kernel tables.
TSAN_ENV = CK_FORK=no TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 exitcode=66 history_size=7"
tsan:
	$(MAKE) BUILD=$(TSAN_BUILD) EXTRA_CFLAGS="$(TSAN_FLAGS)" EXTRA_LDFLAGS="$(TSAN_FLAGS)" \
	  $(TSAN_TESTS:%=$(TSAN_BUILD)/tests/%) $(TSAN_BUILD)/tests/test_par_reduce
	@set -e; for isa in scalar avx2; do \
	  if [ $$isa = avx2 ] && ! grep -q avx2 /proc/cpuinfo; then echo "== AVX2 not supported here: avx2 run skipped"; continue; fi; \
	  for t in $(TSAN_TESTS); do \
	    echo "== TSan DUET_ISA=$$isa $(TSAN_BUILD)/tests/$$t"; \
	    DUET_ISA=$$isa $(TSAN_ENV) $(TSAN_BUILD)/tests/$$t; done; done
	@isa=scalar; grep -q avx2 /proc/cpuinfo && isa=avx2; \
	  echo "== TSan DUET_ISA=$$isa CK_RUN_CASE=core $(TSAN_BUILD)/tests/test_par_reduce"; \
	  DUET_ISA=$$isa CK_RUN_CASE=core $(TSAN_ENV) $(TSAN_BUILD)/tests/test_par_reduce

# The whole suite on 1, 2 and 4 threads (4: more than this machine's cores),
# with the split threshold so low that nearly every op runs in ranges across
# the team: every test's references then check the split paths, and every
# bitwise eager-vs-graph test checks that a split changes no bit.
TEST_THREADS ?= 1 2 4
test-threads: $(TEST_BIN)
	@set -e; for n in $(TEST_THREADS); do \
	  TEST_ENV="DUET_NUM_THREADS=$$n DUET_PAR_MIN_WORK=64 $(TEST_ENV)" TEST_RUNNER="$(TEST_RUNNER)" \
	    TEST_ALONE="$(TEST_ALONE)" TEST_LABEL="threads $$n" sh tests/run_tests.sh $(TEST_BIN); done

valgrind:
	$(MAKE) BUILD=build/vg test TEST_RUNNER="valgrind -q --error-exitcode=9 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect"

# The library must pick the scalar path and never execute an AVX instruction
# on a CPU without AVX2: run the suite (DUET_ISA unset, so detection decides)
# on qemu's Nehalem model, which has SSE4.2 and no AVX at all.
test-noavx2: $(TEST_BIN)
	@command -v qemu-x86_64 >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "duet: installing qemu-user for test-noavx2"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null || exit 1; \
	  else echo "duet: test-noavx2 needs qemu-user (apt-get install qemu-user)"; exit 1; fi; }
	@TEST_ISAS=auto TEST_ENV="DUET_EXPECT_BEST=scalar" TEST_RUNNER="qemu-x86_64 -cpu Nehalem" \
	  TEST_ALONE="$(TEST_ALONE)" sh tests/run_tests.sh $(TEST_BIN)

# Memory over long steady runs (tests/soak/soak.c: 10^7 eager ops, 10^6
# replays, 10^4 traces): fails if resident memory grows by more than 1 %
# after warm-up or the context's live tensors or bytes change.
$(BUILD)/tests/soak/soak: tests/soak/soak.c $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(CFLAGS_BASE) $(EXTRA_CFLAGS) $< -o $@ $(LINK_LIBS) $(EXTRA_LDFLAGS)

soak: $(BUILD)/tests/soak/soak
	$(BUILD)/tests/soak/soak $(SOAK_ARGS)

# ---- the differential fuzzer (docs/testing.md) -----------------------------------------
# clang's libFuzzer drives tests/fuzz/fuzz_diff.c, linked with the library
# built in build/fuzz with the same sanitizers and libFuzzer's coverage
# (fuzzer-no-link), so inputs that reach new library code are kept. The
# working corpus grows in build/fuzz/corpus (seeded from tests/fuzz/corpus,
# which only `git add` changes); crash files land in build/fuzz/.
FUZZ_BUILD := build/fuzz
FUZZ_TIME  ?= 60
FUZZ_ARGS  ?=
FUZZ_PKGS  := clang libclang-rt-dev
FUZZ_SAN   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_SRC   := tests/fuzz/fuzz_diff.c $(wildcard tests/common/progen*.c)
# Passive OpenMP waits: a spinning team would hold the second core of a
# shared machine between inputs. DUET_PAR_MIN_WORK=64: with 2 threads,
# progen's small values (at most 2048 elements) are cut across the team
# too, as under make test-threads, so the split paths are fuzzed.
FUZZ_ENV   := OMP_WAIT_POLICY=passive DUET_PAR_MIN_WORK=64 \
              ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
              UBSAN_OPTIONS=print_stacktrace=1
FUZZ_STAMP := $(FUZZ_BUILD)/.clang-ok

# Like deps: install clang and its libFuzzer runtime from Debian when missing.
$(FUZZ_STAMP): Makefile
	@mkdir -p $(FUZZ_BUILD)
	@rt=""; command -v clang >/dev/null 2>&1 && rt="$$(clang -print-runtime-dir 2>/dev/null)"; \
	if ! command -v clang >/dev/null 2>&1 || [ ! -f "$$rt/libclang_rt.fuzzer-x86_64.a" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "duet: installing missing Debian packages for make fuzz: $(FUZZ_PKGS)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_PKGS) >/dev/null || exit 1; \
	  else \
	    echo "duet: make fuzz needs clang and libFuzzer: sudo apt-get install $(FUZZ_PKGS)"; exit 1; \
	  fi; \
	fi
	@touch $@

$(BUILD)/fuzz_diff: $(FUZZ_SRC) $(wildcard tests/common/progen*.h) $(STATIC)
	@echo "  CC $@"
	$(Q)$(CC) $(CFLAGS_BASE) -Itests/common $(EXTRA_CFLAGS) -fsanitize=fuzzer $(FUZZ_SRC) -o $@ $(LINK_LIBS) $(EXTRA_LDFLAGS)

fuzz-build: $(FUZZ_STAMP)
	$(MAKE) CC=clang BUILD=$(FUZZ_BUILD) EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  EXTRA_LDFLAGS="$(FUZZ_SAN)" $(FUZZ_BUILD)/fuzz_diff

# libFuzzer's closing statistics give the programs run and their rate;
# its exit status (a crash, a leak, a mismatch) is make's. -len_control=0:
# inputs of any length up to -max_len from the start, instead of growing
# the cap slowly; a short input is a short program, so in 60 s from an
# empty corpus the default reached 3514 coverage points (inputs capped at
# 21 bytes) and this 5615, near the 5869 of a 30-minute run.
fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/corpus
	@echo "== make fuzz: $(FUZZ_TIME) s (log: $(FUZZ_BUILD)/fuzz.log)"
	@{ $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_diff -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -max_len=4096 -len_control=0 -timeout=60 -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_ARGS) \
	    $(FUZZ_BUILD)/corpus tests/fuzz/corpus; echo $$? > $(FUZZ_BUILD)/fuzz.rc; } 2>&1 \
	  | tee $(FUZZ_BUILD)/fuzz.log | grep -v '^#[0-9]*.*\(NEW\|REDUCE\)\|NEW_FUNC\|^"\|^###### ' || true
	@rc=$$(cat $(FUZZ_BUILD)/fuzz.rc); \
	awk -v rc=$$rc '/^stat::number_of_executed_units:/ {n = $$2} \
	  /^stat::average_exec_per_sec:/ {r = $$2} /^Done [0-9]+ runs in/ {t = $$5} \
	  END {printf "== make fuzz: %s programs%s, %s programs/second, %s\n", n, t ? " in " t " s" : "", r, \
	       rc == 0 ? "no crash, leak or mismatch" : "FAILED (exit " rc "): see the log and the crash file above"}' \
	  $(FUZZ_BUILD)/fuzz.log; exit $$rc

# ---- examples, demo, bench ----------------------------------------------------------------
$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(CFLAGS_BASE) $(EXTRA_CFLAGS) $< -o $@ $(LINK_LIBS) $(EXTRA_LDFLAGS)

examples: $(EX_BIN)

demo: $(EX_BIN)
	$(BUILD)/examples/hello
	@echo
	$(BUILD)/examples/same_model
	@echo
	$(BUILD)/examples/cnn
	@echo
	$(BUILD)/examples/mlp
	@echo
	$(BUILD)/examples/mlp 1
	@echo
	$(BUILD)/examples/train_step

$(BUILD)/bench/duet-bench: $(BENCH_SRC) $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(CFLAGS_BASE) -Ilib $(BLAS_CFLAGS) $(EXTRA_CFLAGS) $(BENCH_SRC) -o $@ $(LINK_LIBS)

# gnuplot draws the crossover suite's plot. Optional, so it is not among
# DEB_PKGS: one attempt to install gnuplot-nox (as root, with apt-get), and
# the bench runs without it either way (the driver says the plot was skipped).
BENCH_PLOT_STAMP := $(BUILD)/.bench-plot-tried
$(BENCH_PLOT_STAMP):
	@mkdir -p $(BUILD)
	@command -v gnuplot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "duet: installing gnuplot-nox for the bench plots (optional)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null 2>&1; } || \
	    echo "duet: gnuplot-nox could not be installed: bench plots skipped"; \
	  else \
	    echo "duet: no gnuplot: bench plots skipped (sudo apt-get install gnuplot-nox)"; \
	  fi; }
	@touch $@

bench: $(BUILD)/bench/duet-bench $(BENCH_PLOT_STAMP)
	@mkdir -p bench/results
	$(BUILD)/bench/duet-bench $(BENCH_ARGS)

# The eager phase breakdown needs the instrumented library, built apart in
# build/phases (PHASES=1 there) so the default build stays uninstrumented.
# Its test lives outside tests/test_*.c because it only means something in
# that build; it runs under both ISAs before the suite.
PHASES_BUILD := build/phases
$(BUILD)/tests/phases/%: tests/phases/%.c $(TEST_COMMON) $(wildcard tests/common/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	@echo "  CC $@"
	$(Q)$(CC) $(CFLAGS_BASE) -Itests/common -Ilib $(EXTRA_CFLAGS) $< $(TEST_COMMON) -o $@ $(LINK_LIBS) $(CHECK_LIBS) $(EXTRA_LDFLAGS)

breakdown-test:
	$(MAKE) PHASES=1 BUILD=$(PHASES_BUILD) $(PHASES_BUILD)/tests/phases/test_phases
	@set -e; for isa in scalar avx2; do \
	  if [ $$isa = avx2 ] && ! grep -q avx2 /proc/cpuinfo; then echo "== AVX2 not supported here: avx2 run skipped"; continue; fi; \
	  echo "== DUET_ISA=$$isa $(PHASES_BUILD)/tests/phases/test_phases"; \
	  DUET_ISA=$$isa CK_FORK=no $(TEST_RUNNER) $(PHASES_BUILD)/tests/phases/test_phases; done

breakdown: breakdown-test
	$(MAKE) PHASES=1 BUILD=$(PHASES_BUILD) $(PHASES_BUILD)/bench/duet-bench $(PHASES_BUILD)/.bench-plot-tried
	@mkdir -p bench/results
	$(PHASES_BUILD)/bench/duet-bench breakdown $(BENCH_ARGS)

# ---- install --------------------------------------------------------------------------
install: $(STATIC) $(SHARED)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/duet.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libduet.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libduet.so.$(SOMAJOR)
	ln -sf libduet.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libduet.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' duet.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/duet.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/duet.h $(DESTDIR)$(PREFIX)/lib/libduet.* $(DESTDIR)$(PREFIX)/lib/pkgconfig/duet.pc

clean:
	rm -rf build
