# shears — hand-written build. `make` builds build/libshears.a and build/shears;
# `make test`, `make bench`, `make demo`; `make deps` installs the Debian packages.
CXX      ?= g++
BUILD    := build
# Portable baseline: AVX2 + FMA (`make ARCH=` builds for any x86-64). AVX-512 code lives only in
# core/kernels/isa_avx512.cpp, chosen at run time.
ARCH     ?= -mavx2 -mfma
OPT      ?= -O3 -g
CXXFLAGS += $(OPT) -std=c++20 $(ARCH) -Wall -Wextra -pthread -MMD -MP -I.
LDLIBS   := -ldl -lz -pthread

# MPI is optional (`shears train --distributed`): with Debian's libopenmpi-dev (pkg-config mpi-c)
# dist/mpi.cpp is built against it; without it dist/no_mpi.cpp, which refuses --distributed with a
# hint. Only dist/mpi.cpp includes <mpi.h>.
MPI_FOUND := $(shell pkg-config --exists mpi-c 2>/dev/null && echo yes)
ifeq ($(MPI_FOUND),yes)
  MPI_SRC := dist/mpi.cpp
  LDLIBS  += $(shell pkg-config --libs mpi-c)
else
  MPI_SRC := dist/no_mpi.cpp
endif

LIB_SRCS   := $(wildcard core/*.cpp core/ops/*.cpp core/kernels/*.cpp nn/*.cpp nn/models/*.cpp \
                         optim/*.cpp data/*.cpp prune/*.cpp train/*.cpp) \
              $(filter-out dist/mpi.cpp dist/no_mpi.cpp,$(wildcard dist/*.cpp)) $(MPI_SRC)
APP_SRCS   := $(wildcard apps/*.cpp)
TEST_SRCS  := $(wildcard tests/*.cpp)
BENCH_SRCS := $(wildcard bench/*.cpp)
EXAMPLE_SRCS := $(wildcard apps/examples/*.cpp)

LIB_OBJS   := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
APP_OBJS   := $(APP_SRCS:%.cpp=$(BUILD)/%.o)
TEST_OBJS  := $(TEST_SRCS:%.cpp=$(BUILD)/%.o)
BENCH_OBJS := $(BENCH_SRCS:%.cpp=$(BUILD)/%.o)

LIB   := $(BUILD)/libshears.a
APP   := $(BUILD)/shears
TESTS := $(BUILD)/shears_tests
BENCH := $(BUILD)/shears_bench
# Example programs against the library (one per file in apps/examples/).
EXAMPLES := $(EXAMPLE_SRCS:apps/examples/%.cpp=$(BUILD)/examples/%)

# Debian packages the project builds, tests and runs with.
DEB_PACKAGES := g++ make pkg-config libopenblas-dev catch2 libbenchmark-dev nlohmann-json3-dev \
                libcli11-dev libstb-dev zlib1g-dev liblemon-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin \
                librsvg2-bin

.PHONY: all deps test bench demo clean test-tsan
all: $(LIB) $(APP) $(EXAMPLES)

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "make deps: installing" $$missing; \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Per-ISA kernel tables: each unit gets its instruction set's flags; dispatch picks one at run time.
$(BUILD)/core/kernels/isa_avx2.o: CXXFLAGS += -mavx2 -mfma
# (GCC 12 warns falsely inside its own _mm512_max_ps/_mm512_min_ps/_mm512_reduce_add_ps: GCC bug 105593.)
$(BUILD)/core/kernels/isa_avx512.o: CXXFLAGS += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma \
                                               -Wno-maybe-uninitialized -Wno-uninitialized

$(BUILD)/%.o: %.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# Tests find their committed fixtures, and the command they run, wherever the tree is cloned.
$(TEST_OBJS): CXXFLAGS += -DSHEARS_FIXTURES='"$(CURDIR)/tests/fixtures"' -DSHEARS_BINARY='"$(CURDIR)/$(APP)"' \
                          -DSHEARS_FUZZ_REPLAY='"$(CURDIR)/$(BUILD)/fuzz-replay"'

# Each fuzz harness also as a plain program that replays its committed corpus (tests/fuzz/corpus/),
# run by a test in `make test` (and in `make test-asan`, under the sanitizers).
FUZZ_HARNESSES := $(wildcard tests/fuzz/fuzz_*.cpp)
FUZZ_REPLAYS := $(FUZZ_HARNESSES:tests/fuzz/fuzz_%.cpp=$(BUILD)/fuzz-replay/%)
$(FUZZ_REPLAYS): $(BUILD)/fuzz-replay/%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay_main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(filter %.o,$^) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@
$(BUILD)/fuzz-replay/config: $(BUILD)/apps/config_file.o

$(BUILD)/dist/mpi.o: CXXFLAGS += $(shell pkg-config --cflags mpi-c)

# `shears bench --compare-torch` runs bench/torch_step.py from the source tree.
$(BUILD)/apps/bench.o: CXXFLAGS += -DSHEARS_SOURCE_DIR='"$(CURDIR)"'

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(APP): $(APP_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(APP_OBJS) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@

$(TESTS): $(TEST_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(TEST_OBJS) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@

# A static pattern rule, so make keeps the objects (a plain pattern would delete them as intermediates).
$(EXAMPLES): $(BUILD)/examples/%: $(BUILD)/apps/examples/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@

$(BENCH): $(BENCH_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(BENCH_OBJS) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) \
	    -lbenchmark -o $@

test: $(TESTS) $(APP) $(FUZZ_REPLAYS) | deps
	$(TESTS) $(TEST_ARGS)

bench: $(BENCH) | deps
	$(BENCH) $(BENCH_ARGS)

# The demo: MLPNet on Fashion-MNIST (about 10 s on 2 cores), its evaluation, a pruning sweep from
# scratch (the baselines and the post-hoc algorithms at 4 sparsities): table and
# plot; then the quick report on the four papers' claims (`shears report --quick`, resumable).
DEMO_RUN := runs/demo-mlpnet
DEMO_SWEEP := runs/demo-sweep
DEMO_REPORT := runs/demo-report
demo: $(APP) | deps
	$(APP) info
	$(APP) train --model mlpnet --data fashion-mnist --epochs 10 --lr 0.1 --output $(DEMO_RUN) --overwrite
	$(APP) eval --weights $(DEMO_RUN)/best.safetensors --data fashion-mnist
	rm -rf $(DEMO_SWEEP)
	$(APP) sweep --weights $(DEMO_RUN)/best.safetensors --data fashion-mnist \
	    --methods magnitude,random,snip,synflow,spode,woodfisher,lr,swap --sparsities 0.5,0.8,0.9,0.95 \
	    --samples 500 --output $(DEMO_SWEEP)
	$(APP) report --quick --output $(DEMO_REPORT)
	@echo
	@echo "The run folder is $(DEMO_RUN): config.toml, summary.csv, events.jsonl, last/best.safetensors."
	@echo "The sweep is in $(DEMO_SWEEP): sweep.csv (a row per method, sparsity and seed), sweep.svg and sweep.png (the plot)."
	@echo "The report is $(DEMO_REPORT)/report.md (rerun make demo to resume it; docs/report/ has the --full one)."
	@echo "Next: $(APP) prune --weights $(DEMO_RUN)/best.safetensors --data fashion-mnist --method magnitude \\"
	@echo "          --sparsity 0.9 --finetune-epochs 2 --output runs/demo-prune"
	@echo "      $(APP) train --model resnet20 --input-size 32 --epochs 30 --output runs/resnet20"
	@echo "      $(APP) train --help   (all flags; --config FILE reads them from a file)"

# The threaded kernels, the thread pool, the loader and the threaded Sinkhorn (through SWAP) under
# ThreadSanitizer (a separate build tree).
test-tsan: | deps
	$(MAKE) BUILD=build-tsan OPT="-O1 -g -fsanitize=thread" build-tsan/shears_tests
	TSAN_OPTIONS=halt_on_error=1 build-tsan/shears_tests "[kernels],[parallel],[batch_norm],[optim],[e2e],[loader],[swap]"

clean:
	rm -rf $(BUILD) build-tsan

-include $(LIB_OBJS:.o=.d) $(APP_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) $(EXAMPLE_SRCS:%.cpp=$(BUILD)/%.d)

# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (a separate build tree,
# $(BUILD)/asan). Leak checking is off: OpenBLAS, loaded with dlopen, keeps its thread buffers
# until exit. (GCC 12 under -fsanitize=address warns falsely in libstdc++'s std::function.) -O2,
# not -O1: GCC fuses a*b+c into an FMA only from -O2, as in the -O3 build, and tests compare
# initial weights bit for bit with committed fixtures.
ASAN_OPT := -O2 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -Wno-maybe-uninitialized
test-asan: | deps
	$(MAKE) BUILD=$(BUILD)/asan OPT="$(ASAN_OPT)" $(BUILD)/asan/shears_tests $(BUILD)/asan/shears \
	    $(FUZZ_HARNESSES:tests/fuzz/fuzz_%.cpp=$(BUILD)/asan/fuzz-replay/%)
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(BUILD)/asan/shears_tests $(TEST_ARGS)

# libFuzzer harnesses, one per file reader (tests/fuzz/fuzz_<name>.cpp), built with Debian's clang
# under ASan + UBSan against the readers' own layers (core, nn, optim, data: their objects in
# build/fuzz/, instrumented for coverage; the rest of the library is not needed). `make fuzz
# FUZZ_SECONDS=N` runs each for N seconds from seeds that tests/fuzz/make_corpus.cpp writes into
# $(BUILD)/fuzz-corpus/<name> (the corpora grow there); a finding's input lands in
# $(BUILD)/fuzz-artifacts/<name>-*.
FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 30
# Inputs up to what each structure needs: 64 KiB holds several records or tensors of every binary
# format; a config file may reach its reader's 1 MiB cap, so that depth and length bugs are reachable.
FUZZ_MAX_LEN ?= 65536
FUZZ_MAX_LEN_CONFIG := 1048576
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.cpp,%,$(wildcard tests/fuzz/fuzz_*.cpp))
FUZZ_OBJS := $(patsubst %.cpp,$(FUZZ_BUILD)/%.o,$(filter core/% nn/% optim/% data/%,$(LIB_SRCS)))
# (-Wno-unknown-warning-option: clang does not know GCC's -Wno-maybe-uninitialized, see above.)
FUZZ_OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -Wno-unknown-warning-option
fuzz: | deps
	@missing=$$(for p in $(FUZZ_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "make fuzz: installing" $$missing; \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(MAKE) BUILD=$(FUZZ_BUILD) CXX=clang++ OPT="$(FUZZ_OPT) -fsanitize=fuzzer-no-link" $(FUZZ_OBJS)
	$(MAKE) $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%) $(FUZZ_BUILD)/make_corpus
	$(FUZZ_BUILD)/make_corpus $(BUILD)/fuzz-corpus
	@mkdir -p $(BUILD)/fuzz-artifacts; failed=; \
	for name in $(FUZZ_NAMES); do \
	    echo "== fuzz $$name: $(FUZZ_SECONDS) s"; \
	    max_len=$(FUZZ_MAX_LEN); [ $$name = config ] && max_len=$(FUZZ_MAX_LEN_CONFIG); \
	    $(FUZZ_BUILD)/$$name -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=$$max_len \
	        -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz-artifacts/$$name- $(BUILD)/fuzz-corpus/$$name \
	        tests/fuzz/corpus/$$name || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: findings in$$failed (inputs in $(BUILD)/fuzz-artifacts)"; exit 1; fi

$(FUZZ_BUILD)/%: tests/fuzz/fuzz_%.cpp tests/fuzz/fuzz_common.hpp $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	clang++ $(FUZZ_OPT) -fsanitize=fuzzer -std=c++20 $(ARCH) -Wall -Wextra -pthread -I. $(filter %.cpp %.o,$^) \
	    $(LDLIBS) -o $@
$(FUZZ_BUILD)/config: apps/config_file.cpp

# The seed writer is an ordinary program against the ordinary library.
$(FUZZ_BUILD)/make_corpus: $(BUILD)/tests/fuzz/make_corpus.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@

# `make fuzz-merge` minimises what `make fuzz` found into the committed corpora: tests/fuzz/corpus/<name>
# keeps the smallest inputs that cover every feature seen (libFuzzer's -merge).
fuzz-merge:
	@for name in $(FUZZ_NAMES); do \
	    mkdir -p tests/fuzz/corpus/$$name.new; \
	    $(FUZZ_BUILD)/$$name -merge=1 -max_len=$(FUZZ_MAX_LEN_CONFIG) tests/fuzz/corpus/$$name.new \
	        tests/fuzz/corpus/$$name $(BUILD)/fuzz-corpus/$$name 2>&1 | tail -1; \
	    rm -rf tests/fuzz/corpus/$$name; mv tests/fuzz/corpus/$$name.new tests/fuzz/corpus/$$name; \
	done

.PHONY: test-asan fuzz fuzz-merge
-include $(BUILD)/tests/fuzz/make_corpus.d $(FUZZ_HARNESSES:tests/fuzz/%.cpp=$(BUILD)/tests/fuzz/%.d)
