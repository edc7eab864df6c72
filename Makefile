# cmdipc — entry points. The build itself is meson; this file installs what it needs
# and runs it.
#
#   make deps    install the Debian packages of every target below (if missing)
#   make build   build/ (debugoptimized)
#   make test    every test in build/ and in build-asan/ (ASan+UBSan), the
#                multi-thread suites in build-tsan/ (ThreadSanitizer); the last
#                line printed is "tests: N passed, N failed, N skipped"
#   make demo    run the multi-service example, then the cmdipc CLI walkthrough
#   make bench   benchmarks in build-release/ (every figure with its ratio to the
#                baseline measured in the same run, then every target: ok or
#                MISSED; under 5 minutes)
#   make bench-peers  ZeroMQ and Node.js next to cmdipc (not part of make bench)
#   make deb     the Debian packages (debian/), built from a copy of the tree in
#                build-deb/; the .debs land there
#   make packages  print the Debian packages of each target
#   make format  clang-format the C sources
#   make clean   remove the build directories
#
# Each target installs the Debian packages it needs, and only those.

SHELL := /bin/bash

# What building needs (make build, make demo).
BUILD_PACKAGES := meson ninja-build pkg-config gcc libc6-dev make python3 \
                  libuv1-dev libjansson-dev libsodium-dev
# make test: the build's, and what the tests run: socat (the README's examples),
# zsh (the completion test), groff-base and man-db (the man pages), file, and
# dpkg-dev, debhelper and build-essential (the Debian package test), nodejs
# (test-noise checks the handshake against Node's crypto). Later issues
# add: clang libclang-rt-14-dev nats-server libnats-dev.
DEB_PACKAGES := $(BUILD_PACKAGES) socat zsh groff-base man-db file \
                dpkg-dev debhelper build-essential nodejs
# make bench: callgrind counts instructions.
BENCH_PACKAGES := $(BUILD_PACKAGES) valgrind
# What make bench-peers compares cmdipc with (on top of make bench's).
PEER_PACKAGES := libzmq3-dev nodejs
# make deb: debian/control's Build-Depends and the tools that read it.
DEB_BUILD_PACKAGES := $(BUILD_PACKAGES) dpkg-dev debhelper build-essential

# Seconds per benchmark figure (make bench BENCH_SECONDS=5 for steadier numbers).
BENCH_SECONDS ?= 2

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            CMDIPC_TEST_TIMEOUT_MULTIPLIER=3
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
            CMDIPC_TEST_TIMEOUT_MULTIPLIER=3
# The suites ThreadSanitizer runs: everything with registries on several
# threads (memory channels, inproc://, the multi-thread example).
TSAN_SUITES := --suite threads --suite unit --suite transport --suite ipc --suite examples

FORMAT_DIRS := include lib transports test examples tools
comma := ,

# $(call configure,DIR,MESON OPTIONS): set up DIR unless it is already configured.
configure = { [ -f $(1)/build.ninja ] || { rm -rf $(1) && meson setup $(1) $(2); }; }

.PHONY: deps deps-build deps-test deps-bench deps-peers deps-deb packages build test \
        demo bench bench-peers deb format clean

# $(call install-packages,LIST): apt-get installs the packages of LIST that are
# missing (as root, through sudo otherwise).
install-packages = \
	missing=""; \
	for p in $(sort $(1)); do \
	    dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' \
	        || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	cmd="apt-get install -y --no-install-recommends$$missing"; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null; then sudo="sudo"; \
	else echo "missing packages:$$missing; as root run: apt-get update && $$cmd" >&2; exit 1; fi; \
	echo "installing:$$missing"; \
	$$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive $$cmd

deps:
	@$(call install-packages,$(BUILD_PACKAGES) $(DEB_PACKAGES) $(BENCH_PACKAGES) \
	    $(PEER_PACKAGES) $(DEB_BUILD_PACKAGES))
deps-build:
	@$(call install-packages,$(BUILD_PACKAGES))
deps-test:
	@$(call install-packages,$(DEB_PACKAGES))
deps-bench:
	@$(call install-packages,$(BENCH_PACKAGES))
deps-peers:
	@$(call install-packages,$(BENCH_PACKAGES) $(PEER_PACKAGES))
deps-deb:
	@$(call install-packages,$(DEB_BUILD_PACKAGES))

packages:
	@echo "build: $(BUILD_PACKAGES)"
	@echo "test: $(DEB_PACKAGES)"
	@echo "bench: $(BENCH_PACKAGES)"
	@echo "bench-peers: $(BENCH_PACKAGES) $(PEER_PACKAGES)"
	@echo "deb: $(DEB_BUILD_PACKAGES)"

# Configures build/ on first use, then compiles.
build: deps-build
	@$(call configure,build,--buildtype=debugoptimized)
	meson compile -C build

# Both builds are tested even if the first fails; a build that does not compile
# leaves no testlog, which test-summary counts as a failure.
test: deps-test
	@rc=0; \
	rm -f build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	    build-tsan/meson-logs/testlog.json; \
	{ $(call configure,build,--buildtype=debugoptimized) && meson compile -C build \
	    && meson test -C build --print-errorlogs; } || rc=1; \
	{ $(call configure,build-asan,-Db_sanitize=address$(comma)undefined -Db_lundef=false) \
	    && meson compile -C build-asan \
	    && $(ASAN_ENV) meson test -C build-asan --print-errorlogs --timeout-multiplier 3; \
	} || rc=1; \
	{ $(call configure,build-tsan,-Db_sanitize=thread -Db_lundef=false) \
	    && meson compile -C build-tsan \
	    && $(TSAN_ENV) meson test -C build-tsan --print-errorlogs --timeout-multiplier 3 \
	        $(TSAN_SUITES); \
	} || rc=1; \
	scripts/test-summary build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	    build-tsan/meson-logs/testlog.json || rc=1; \
	exit $$rc

# Runs the example with several services (built by `make build`), then the
# command-line tool against a hub and services in separate processes.
demo: build
	build/examples/multi-service
	examples/cli-demo.sh

# build-release/ with the benchmarks on (turned on if it was configured without).
bench-build = $(call configure,build-release,--buildtype=release -Dbenchmarks=true) \
	&& { python3 -c 'import json, sys; o = json.load(open("build-release/meson-info/intro-buildoptions.json")); sys.exit(not any(x["name"] == "benchmarks" and x["value"] for x in o))' \
	     || meson configure build-release -Dbenchmarks=true; } \
	&& meson compile -C build-release

# Every benchmark registered with benchmark() in test/bench/, one after the other:
# ping_pongs, pump, million_timers, sizes, then the callgrind instruction counts.
bench: deps-bench
	@$(bench-build)
	CMDIPC_BENCH_SECONDS=$(BENCH_SECONDS) meson test -C build-release --benchmark --verbose
	@python3 test/bench/targets.py build-release/meson-logs/testlog.json

# cmdipc next to ZeroMQ (REQ/REP, DEALER/ROUTER) and a Node.js NDJSON ping-pong.
bench-peers: deps-peers
	@$(bench-build)
	test/bench/peers.sh $(BENCH_SECONDS)

# dpkg-buildpackage writes into the parent of the tree it builds: a copy of the
# tree (without the build directories) in build-deb/src keeps it out of ours.
deb: deps-deb
	rm -rf build-deb && mkdir -p build-deb/src
	tar --exclude-vcs --exclude='./build' --exclude='./build-*' -cf - . | tar -xf - -C build-deb/src
	cd build-deb/src && dpkg-buildpackage -us -uc -b
	@ls build-deb/*.deb

format:
	@files=$$(find $(FORMAT_DIRS) -name '*.[ch]' 2>/dev/null); \
	[ -z "$$files" ] || clang-format -i $$files

clean:
	rm -rf build build-asan build-tsan build-release build-deb
