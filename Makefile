# Chorus: the two commands are `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
REL := build/rel
ASAN := build/asan
SIM_SEEDS ?= 1000
SIM_STEPS ?= 2000
SOAK_SEEDS ?= 100000

.PHONY: all deps build build-asan run test test-unit test-sim sim bench format clean

all: build

deps:
	@bash scripts/install-deps.sh

$(REL)/build.ninja:
	cmake -S . -B $(REL) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(ASAN)/build.ninja:
	cmake -S . -B $(ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHORUS_SANITIZE=ON -DCHORUS_BENCH=OFF \
	  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g"

build: deps $(REL)/build.ninja
	ninja -C $(REL) -j $(JOBS)

build-asan: deps $(ASAN)/build.ninja
	ninja -C $(ASAN) -j $(JOBS)

# Until the server exists, the main job is a visible simulated 5-node cluster going through a
# fault schedule, printing its timeline.
run: build
	$(REL)/src/sim/chorus-sim --seed $${SEED:-42} --nodes 5 --steps 3000 --faults all --timeline

# Every test, under AddressSanitizer and UndefinedBehaviorSanitizer.
test: build-asan
	cd $(ASAN) && ctest --output-on-failure -j $(JOBS)
	$(ASAN)/src/sim/chorus-sim --seed 1 --count $(SIM_SEEDS) --steps $(SIM_STEPS) --faults all --jobs $(JOBS)

sim: build
	$(REL)/src/sim/chorus-sim --seed $${SEED:-1000000} --count $(SOAK_SEEDS) --steps $(SIM_STEPS) --faults all --jobs $(JOBS)

bench: build
	$(REL)/bench/chorus-bench-raft

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build
