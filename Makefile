# labyrinth - top-level driver.  The quick start is two commands:
#   make run    build and run the demo (the seed's scenario) on defaults
#   make test   build every flavour and run every test
# Also: make bench, make fuzz, make soak, make kernel-debug, make install
# PREFIX=DIR, make clean.
# Whatever a target needs beyond build-essential, cmake and git it installs
# from Debian's packages (when run as root), through scripts/deps.sh.

BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build run test fuzz soak bench kernel-debug install clean

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@$(BUILD)/tools/labyrinth demo $(ARGS)

test:
	@scripts/test.sh

# The libFuzzer run of `make test`, longer (LB_FUZZ_SECONDS, default 600).
fuzz:
	@LB_TEST_FLAVOURS=fuzz LB_FUZZ_SECONDS=$${LB_FUZZ_SECONDS:-600} scripts/test.sh

# The long soak: `labyrinth stress` for LB_SOAK_SECONDS (default 3600, an
# hour) in a VERIFY zone, progress each second on stderr; ARGS=--json for
# a JSON report.  Then the churn torture (tests/stress_churn.c: threads
# created and exiting all the time, signals aimed at exiting threads, an
# ownership table) for LB_CHURN_SECONDS (default 1800).  `make test` runs
# the first for 60 s and the second for 10 s in every flavour.
soak: build
	@$(BUILD)/tools/labyrinth stress --duration $${LB_SOAK_SECONDS:-3600}s --verify --max-order 6 $(ARGS)
	@LB_CHURN_SECONDS=$${LB_CHURN_SECONDS:-1800} $(BUILD)/tests/stress_churn

# The kernel flavour's QEMU self-test on a debug kernel (KASAN, lockdep,
# PROVE_RCU, DEBUG_ATOMIC_SLEEP, kmemleak) built from Debian's linux-source
# and cached in LB_DEBUG_KERNEL_CACHE: the first run builds it (about 13
# minutes on 2 vCPUs), which is why it is not part of `make test`.
kernel-debug:
	@bash kernel/debug-kernel.sh

bench:
	@scripts/deps.sh bench
	@cmake -S . -B $(BUILD)-bench -DCMAKE_BUILD_TYPE=Release -DLABYRINTH_BENCH=ON -DLABYRINTH_TESTS=OFF >/dev/null
	@cmake --build $(BUILD)-bench -j $(JOBS)
	@$(BUILD)-bench/bench/labyrinth-bench $(ARGS)
	@$(BUILD)-bench/bench/labyrinth-bench-reserve

install:
	@cmake -S . -B $(BUILD)-install -DCMAKE_BUILD_TYPE=Release -DLABYRINTH_TESTS=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD)-install -j $(JOBS)
	@cmake --install $(BUILD)-install

clean:
	rm -rf $(BUILD) $(BUILD)-*
