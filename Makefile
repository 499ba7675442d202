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
# distributed/mpi.cpp is built against it; without it distributed/no_mpi.cpp, which refuses --distributed with a
# hint. Only distributed/mpi.cpp includes <mpi.h>.
MPI_FOUND := $(shell pkg-config --exists mpi-c 2>/dev/null && echo yes)
ifeq ($(MPI_FOUND),yes)
  MPI_SRC := distributed/mpi.cpp
  LDLIBS  += $(shell pkg-config --libs mpi-c)
else
  MPI_SRC := distributed/no_mpi.cpp
endif

LIB_SRCS   := $(wildcard core/*.cpp core/ops/*.cpp core/kernels/*.cpp nn/*.cpp nn/models/*.cpp \
                         optim/*.cpp data/*.cpp prune/*.cpp prune/algorithms/*.cpp prune/methods/*.cpp train/*.cpp \
                         pipeline/*.cpp) \
              $(filter-out distributed/mpi.cpp distributed/no_mpi.cpp,$(wildcard distributed/*.cpp)) $(MPI_SRC)
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
                librsvg2-bin cmake clang-format universal-ctags

# House rules as code, run by .ci/run: lines per folder against tools/loc_budgets.txt, and
# clang-format (.clang-format: Google style, 120 columns) on the lines changed since FORMAT_BASE
# (CI: the last commit; before submitting a change: FORMAT_BASE=<the commit it starts from>).
FORMAT_BASE ?= HEAD~1
loc:
	@tools/loc.sh
format-check:
	@out=$$(git diff -U0 --no-color $(FORMAT_BASE) -- '*.cpp' '*.hpp' | clang-format-diff-14 -p1); \
	if [ -n "$$out" ]; then echo "$$out"; echo "format-check: these changed lines differ from clang-format" \
	    "(make format-fix FORMAT_BASE=$(FORMAT_BASE) reformats them)"; exit 1; fi
format-fix:
	git diff -U0 --no-color $(FORMAT_BASE) -- '*.cpp' '*.hpp' | clang-format-diff-14 -p1 -i

.PHONY: all deps test bench demo clean test-tsan install uninstall check-install loc format-check format-fix check-long deps-torch
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

# Object rules never call apt: `make` builds only. `make demo`, `make test` (and .ci/run) install
# what is missing first (make deps), then build.
$(BUILD)/%.o: %.cpp
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

$(BUILD)/distributed/mpi.o: CXXFLAGS += $(shell pkg-config --cflags mpi-c)

# `shears bench --compare-torch` runs bench/torch_step.py from the source tree.
$(BUILD)/apps/bench.o: CXXFLAGS += -DSHEARS_SOURCE_DIR='"$(CURDIR)"'

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(APP): $(APP_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(APP_OBJS) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@

$(TESTS): $(TEST_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(TEST_OBJS) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@

# The public headers as a consumer sees them: $(BUILD)/include/shears/<path>, their includes
# rewritten to <shears/...> (the tree's own includes are rooted at its top). The *_impl.hpp kernel
# templates and core/simd/ are not public. The examples build against these, as outside code does.
PUBLIC_HEADERS := $(filter-out %_impl.hpp %_internal.hpp core/simd/%,$(wildcard core/*.hpp core/ops/*.hpp core/kernels/*.hpp \
                    nn/*.hpp nn/models/*.hpp optim/*.hpp data/*.hpp prune/*.hpp prune/algorithms/*.hpp prune/methods/registry.hpp \
                    distributed/*.hpp train/*.hpp pipeline/*.hpp))
STAGED_HEADERS := $(PUBLIC_HEADERS:%=$(BUILD)/include/shears/%)
$(STAGED_HEADERS): $(BUILD)/include/shears/%: %
	@mkdir -p $(dir $@)
	@sed -E 's@^#include "((core|nn|optim|data|prune|distributed|train|pipeline)/[^"]+)"@#include <shears/\1>@' $< > $@
EXAMPLE_OBJS := $(EXAMPLE_SRCS:%.cpp=$(BUILD)/%.o)
$(EXAMPLE_OBJS): CXXFLAGS += -I$(BUILD)/include
$(EXAMPLE_OBJS): $(STAGED_HEADERS)

# A static pattern rule, so make keeps the objects (a plain pattern would delete them as intermediates).
$(EXAMPLES): $(BUILD)/examples/%: $(BUILD)/apps/examples/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) -o $@

$(BENCH): $(BENCH_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(BENCH_OBJS) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS) \
	    -lbenchmark -o $@

# Checks too long for make test (minutes) or needing PyTorch: weights written by PyTorch evaluated
# by shears (tests/long/). deps-torch installs Debian's PyTorch 1.13 and torchvision 0.14.
deps-torch:
	@dpkg -s python3-torch python3-torchvision python3-pil python3-numpy >/dev/null 2>&1 || \
	    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-torch python3-torchvision \
	    python3-pil python3-numpy)
check-long: deps deps-torch $(APP)
	@for check in tests/long/*.sh; do echo "== $$check"; $$check || exit 1; done

test: deps
	@$(MAKE) --no-print-directory $(TESTS) $(APP) $(FUZZ_REPLAYS)
	$(TESTS) $(TEST_ARGS)

bench: deps
	@$(MAKE) --no-print-directory $(BENCH)
	$(BENCH) $(BENCH_ARGS)

# `make install PREFIX=... [DESTDIR=...]`: the public headers under include/shears/, libshears.a,
# the shared libshears.so.$(VERSION) (soname libshears.so.$(MAJOR)), shears.pc for pkg-config,
# shearsConfig.cmake for find_package(shears) (target shears::shears), the `shears` command and
# the docs. Binaries and libraries are stripped unless STRIP= (empty) keeps their debug info. The
# shared library is built from its own position-independent objects ($(BUILD)/pic, -fPIC).
PREFIX  ?= /usr/local
STRIP   ?= strip --strip-debug
VERSION := $(shell sed -n 's/.*kVersion = "\(.*\)".*/\1/p' core/version.hpp)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
SHLIB   := $(BUILD)/libshears.so.$(VERSION)
DEST    := $(DESTDIR)$(PREFIX)
PIC_LIB := $(BUILD)/pic/libshears.a

$(PIC_LIB): FORCE | deps
	$(MAKE) BUILD=$(BUILD)/pic OPT="$(OPT) -fPIC" $(PIC_LIB)
FORCE:

$(SHLIB): $(PIC_LIB)
	$(CXX) -shared -Wl,-soname,libshears.so.$(MAJOR) -Wl,--whole-archive $(PIC_LIB) -Wl,--no-whole-archive \
	    $(LDLIBS) -o $@

install: $(LIB) $(APP) $(SHLIB) $(STAGED_HEADERS)
	install -d $(DEST)/include $(DEST)/lib/pkgconfig $(DEST)/lib/cmake/shears $(DEST)/bin $(DEST)/share/doc/shears
	cp -R $(BUILD)/include/shears $(DEST)/include/
	install -m 644 $(LIB) $(DEST)/lib/libshears.a
	install -m 755 $(SHLIB) $(DEST)/lib/libshears.so.$(VERSION)
	ln -sfn libshears.so.$(VERSION) $(DEST)/lib/libshears.so.$(MAJOR)
	ln -sfn libshears.so.$(MAJOR) $(DEST)/lib/libshears.so
	install -m 755 $(APP) $(DEST)/bin/shears
	if [ -n "$(STRIP)" ]; then $(STRIP) $(DEST)/lib/libshears.a $(DEST)/lib/libshears.so.$(VERSION) $(DEST)/bin/shears; fi
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES_PRIVATE@|$(if $(filter yes,$(MPI_FOUND)),mpi-c,)|' tools/install/shears.pc.in \
	    > $(DEST)/lib/pkgconfig/shears.pc
	for f in shearsConfig shearsConfigVersion; do \
	    sed -e 's|@VERSION@|$(VERSION)|' -e 's|@MAJOR@|$(MAJOR)|' tools/install/$$f.cmake.in \
	        > $(DEST)/lib/cmake/shears/$$f.cmake; done
	cp -R README.md docs $(DEST)/share/doc/shears/

uninstall:
	rm -rf $(DEST)/include/shears $(DEST)/lib/cmake/shears $(DEST)/share/doc/shears
	rm -f $(DEST)/lib/libshears.a $(DEST)/lib/libshears.so $(DEST)/lib/libshears.so.$(MAJOR) \
	    $(DEST)/lib/libshears.so.$(VERSION) $(DEST)/lib/pkgconfig/shears.pc $(DEST)/bin/shears

# What .ci/run checks: install into a fresh prefix, then build an example from outside the tree
# with pkg-config and with CMake, and run each.
CHECK_PREFIX := $(CURDIR)/$(BUILD)/check-install
check-install: | deps
	rm -rf $(CHECK_PREFIX) $(BUILD)/consumer
	$(MAKE) install PREFIX=$(CHECK_PREFIX)
	mkdir -p $(BUILD)/consumer
	cd $(BUILD)/consumer && PKG_CONFIG_PATH=$(CHECK_PREFIX)/lib/pkgconfig $(CXX) -O2 \
	    $(CURDIR)/apps/examples/custom_importance.cpp \
	    $$(PKG_CONFIG_PATH=$(CHECK_PREFIX)/lib/pkgconfig pkg-config --cflags --libs shears) \
	    -Wl,-rpath,$(CHECK_PREFIX)/lib -o with_pkg_config
	$(BUILD)/consumer/with_pkg_config synthetic
	cmake -S tools/install/consumer -B $(BUILD)/consumer/cmake -DCMAKE_PREFIX_PATH=$(CHECK_PREFIX) \
	    -DEXAMPLE_SOURCE=$(CURDIR)/apps/examples/custom_importance.cpp -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD)/consumer/cmake
	$(BUILD)/consumer/cmake/example synthetic

# The demo: MLPNet on Fashion-MNIST (about 10 s on 2 cores), its evaluation, a pruning sweep from
# scratch (the baselines and the post-hoc algorithms at 4 sparsities): table and
# plot; then the quick report on the four papers' claims (`shears report --quick`, resumable).
DEMO_RUN := runs/demo-mlpnet
DEMO_SWEEP := runs/demo-sweep
DEMO_REPORT := runs/demo-report
demo: deps
	@$(MAKE) --no-print-directory $(APP)
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
# format; a config file may reach its reader's 1 MiB cap, so that depth and length bugs are reachable
# (and tries long inputs from the start: libFuzzer's length control would grow them slowly).
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
	    limits="-max_len=$(FUZZ_MAX_LEN)"; \
	    [ $$name = config ] && limits="-max_len=$(FUZZ_MAX_LEN_CONFIG) -len_control=0"; \
	    $(FUZZ_BUILD)/$$name -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 $$limits \
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
