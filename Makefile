# Chorus: the two commands are `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
REL := build/rel
ASAN := build/asan
SIM_SEEDS ?= 1000
SIM_STEPS ?= 2000
# Seeds of four groups sharing each member's log, in `make test`.
SIM_GROUP_SEEDS ?= 300
SOAK_SEEDS ?= 100000
# Each fuzz target runs this long in `make test`; `make fuzz-run` defaults to longer.
FUZZ_TEST_SECONDS ?= 20

.PHONY: all deps build build-asan run test test-unit test-sim sim sim-demo bench format clean
.PHONY: bench-wal bench-etcd bench-tls bench-redis bench-engine-groups bench-groups fuzz fuzz-run fuzz-seeds format-check chaos chaos-soak redis-suite test-redis-suite

all: build

deps:
	@bash scripts/install-deps.sh

$(REL)/build.ninja:
	cmake -S . -B $(REL) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHORUS_WERROR=OFF

$(ASAN)/build.ninja:
	cmake -S . -B $(ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHORUS_SANITIZE=ON -DCHORUS_BENCH=OFF \
	  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g"

build: deps $(REL)/build.ninja
	ninja -C $(REL) -j $(JOBS)

build-asan: deps $(ASAN)/build.ninja
	ninja -C $(ASAN) -j $(JOBS)

# The main job: a local 3-member cluster of chorusd on loopback (clients on 2379, 22379, 32379),
# data in .run/. Ctrl-C stops it.
run: build
	TLS=$(TLS) bash scripts/run-cluster.sh $(REL)/src/server/chorusd

# A simulated 5-node cluster going through a fault schedule, printing its timeline.
sim-demo: build
	$(REL)/src/sim/chorus-sim --seed $${SEED:-42} --nodes 5 --steps 3000 --faults all --timeline

# Every test, under AddressSanitizer and UndefinedBehaviorSanitizer, then each fuzz target briefly,
# then the chaos harness's checkers on good and broken histories (no cluster, under a second).
# The release binaries are built too, so a release-only break fails here.
test: build-asan build
	$(MAKE) --no-print-directory format-check
	cd $(ASAN) && ctest --output-on-failure -j $(JOBS)
	$(ASAN)/src/sim/chorus-sim --seed 1 --count $(SIM_SEEDS) --steps $(SIM_STEPS) --faults all --jobs $(JOBS)
	$(ASAN)/src/sim/chorus-sim --seed 1 --count $(SIM_GROUP_SEEDS) --groups 4 --steps $(SIM_STEPS) --faults all --jobs $(JOBS)
	$(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)
	/usr/bin/python3 -m unittest discover -s tests/chaos -p 'test_*.py'

# Real chorusd processes in network namespaces under partitions, kills, pauses and packet loss,
# every history checked (tests/chaos). Needs root. `make chaos` is CI's set of runs, including a
# deliberately broken member the harness must catch; `make chaos-soak` runs longer and more.
CHAOS_SECONDS ?= 60
# CI's schedules are fixed (timing still varies run to run); the soak draws new ones each time.
CHAOS_SEED ?= 1000
CHAOS_SOAK_SECONDS ?= 600
CHAOS_SOAK_RUNS ?= 2
CHAOS_OUT ?= build/chaos
CHAOS := /usr/bin/python3 tests/chaos/chaos.py --chorusd $(REL)/src/server/chorusd \
  --lincheck $(REL)/src/check/chorus-lincheck --out $(CHAOS_OUT)

chaos: build
	$(CHAOS) --plan ci --seconds $(CHAOS_SECONDS) --seed $(CHAOS_SEED)

# CHAOS_SOAK_ONLY=name,name runs only those entries of the plan (tests/chaos/chaos.py, PLANS).
chaos-soak: build
	$(CHAOS) --plan soak --seconds $(CHAOS_SOAK_SECONDS) --runs $(CHAOS_SOAK_RUNS) \
	  $(if $(CHAOS_SOAK_ONLY),--only $(CHAOS_SOAK_ONLY))

sim: build
	$(REL)/src/sim/chorus-sim --seed $${SEED:-1000000} --count $(SOAK_SEEDS) --groups $${GROUPS:-1} --steps $(SIM_STEPS) --faults all --jobs $(JOBS)

bench: build
	$(REL)/bench/chorus-bench-raft
	$(REL)/bench/chorus-bench-kv --dir build/bench-kv

# What an idle group costs the engine alone: 10,000 groups of 3 replicas over 3 members in one
# process, quiesced, then a minute of simulated time (bench/engine_groups.cc).
bench-engine-groups: build
	$(REL)/bench/chorus-bench-engine-groups --groups $${GROUPS:-10000} --seconds 60

# Data groups in real chorusd processes (bench/bench_groups.py): 10,000 idle groups over 3 members
# (CPU and memory once quiesced, and how leadership spread), then writes over 1, 8 and 64 groups.
# The figures go into docs/BENCHMARKS.md.
bench-groups: build
	/usr/bin/python3 bench/bench_groups.py --chorusd $(REL)/src/server/chorusd \
	  --load $(REL)/bench/chorus-etcd-load --groups $${GROUPS:-10000} --docs docs/BENCHMARKS.md

# Chorus beside etcd 3.4 (Debian's etcd-server, installed here) on this machine, in one run: every
# scenario of bench/etcd_load.cc against a fresh 3-member cluster of each; the table and chart go
# into docs/BENCHMARKS.md. BENCH_ETCD_SECONDS per scenario, after 2 s of warm-up.
BENCH_ETCD_SECONDS ?= 8
bench-etcd: build
	@bash scripts/install-deps.sh --bench
	/usr/bin/python3 bench/bench_etcd.py --load $(REL)/bench/chorus-etcd-load \
	  --chorusd $(REL)/src/server/chorusd --bench-raft $(REL)/bench/chorus-bench-raft \
	  --seconds $(BENCH_ETCD_SECONDS) --docs docs/BENCHMARKS.md --svg docs/bench-etcd.svg \
	  --json build/bench-etcd/results.json

# Chorus and etcd 3.4 over TLS (https client URLs, --client-cert-auth), put and get at 256 clients.
bench-tls: build
	@bash scripts/install-deps.sh --bench
	/usr/bin/python3 bench/bench_tls.py --load $(REL)/bench/chorus-etcd-load \
	  --chorusd $(REL)/src/server/chorusd

# The Redis face beside redis-server 7 (appendfsync always, and no persistence) under Debian's
# redis-benchmark, 50 clients, unpipelined and -P 16; the table goes into docs/BENCHMARKS.md.
BENCH_REDIS_REQUESTS ?= 100000
bench-redis: build
	@bash scripts/install-deps.sh --bench
	/usr/bin/python3 bench/bench_redis.py --chorusd $(REL)/src/server/chorusd \
	  --requests $(BENCH_REDIS_REQUESTS) --docs docs/BENCHMARKS.md

# Redis 7.0's own TCL tests (Debian's redis source package, fetched at run time, never
# committed) against a 3-member cluster: prints `N passed, N failed` and what failed where.
redis-suite: build
	@bash scripts/install-deps.sh --redis-suite
	/usr/bin/python3 tests/conformance/redis_suite.py --chorusd $(REL)/src/server/chorusd \
	  --suite "$$(bash scripts/fetch-redis-suite.sh build/redis-suite)" \
	  --report build/redis-suite/failed.txt --logs build/redis-suite/logs
test-redis-suite: redis-suite

# Write-ahead log throughput with 1, 16 and 256 writers against the disk's raw fdatasync rate.
BENCH_WAL_SECONDS ?= 3
bench-wal: deps $(REL)/build.ninja
	ninja -C $(REL) -j $(JOBS) chorus-bench-wal
	$(REL)/bench/chorus-bench-wal --seconds $(BENCH_WAL_SECONDS) --dir build/bench-wal

# libFuzzer targets (fuzz/): a separate clang build with AddressSanitizer and UBSan.
# `make fuzz-run` runs each for FUZZ_SECONDS from the seeds in fuzz/corpus; what it finds goes
# to build/fuzz/corpus. `make fuzz-seeds` writes the seeds again.
FUZZ := build/fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := wal_record_fuzz snapshot_chunk_fuzz kv_command_fuzz transport_frame_fuzz \
  gateway_request_fuzz redis_request_fuzz

$(FUZZ)/build.ninja:
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCHORUS_FUZZ=ON -DCHORUS_BENCH=OFF

fuzz: deps $(FUZZ)/build.ninja
	ninja -C $(FUZZ) -j $(JOBS) $(FUZZ_TARGETS) chorus-fuzz-seeds

fuzz-run: fuzz
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ)/corpus/$$t && \
	  $(FUZZ)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$(FUZZ)/ \
	    -print_final_stats=1 $(FUZZ)/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

fuzz-seeds: fuzz
	$(FUZZ)/fuzz/chorus-fuzz-seeds fuzz/corpus

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

# Fails on any C++ file that `make format` would change.
format-check: deps
	clang-format --dry-run -Werror $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build
