# oxmalloc build, test and install entry points. See README.md.
PREFIX  ?= /usr/local
CARGO   ?= cargo
LIB     := target/release/liboxmalloc.so
# The debug library: debug assertions, lock-rank checks (ctests-debug).
LIB_DEBUG := target/debug/liboxmalloc.so
# The shared library exports the C ABI: feature `export` (off by default, so that a Rust
# program depending on the crate exports nothing and needs no C compiler).
EXPORT  := --features export
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# The main job: a real program under the allocator (override: make run CMD="...").
CMD     ?= /usr/bin/python3 scripts/demo.py

.PHONY: all build build-debug deps header test unit rust ctests ctests-debug programs run bench bench-foundation install clean

# `make` builds the release library and regenerates the header; `make test` only checks that
# the checked-in header is current (so a stale commit fails CI).
all: build header

build:
	$(CARGO) build --release $(EXPORT)

build-debug:
	$(CARGO) build $(EXPORT)

# Regenerates include/oxmalloc.h with cbindgen (tests/header.rs fails when it is stale).
header:
	OXMALLOC_BLESS=1 $(CARGO) test --no-default-features --test header

# Debian packages the tests use (redis, sqlite3, the peer allocators...), installed if missing.
deps:
	scripts/install-deps.sh

# Every test: Rust unit tests, header freshness, the Rust API, C programs (linked and
# LD_PRELOAD), real programs.
test: deps build unit rust ctests ctests-debug programs

unit:
	$(CARGO) test --no-default-features --lib --test header --test layers

# The Rust API: a test binary whose global allocator is OxMalloc, built with default features
# (it must define no C symbol) and with `export` (C code in it must allocate from oxmalloc);
# every public item's rustdoc example, compiled and run; the documentation's links.
rust:
	$(CARGO) test --test rust_global --test rust_api_docs
	$(CARGO) test $(EXPORT) --test rust_global
	$(CARGO) test --doc
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

ctests: build
	OXMALLOC_LIB=$(CURDIR)/$(LIB) $(CARGO) test --no-default-features --test ctests

# The same C programs on the debug library, whose assertions and lock-rank checks the release
# build compiles away (they caught fork's lock order, which only debug builds check).
ctests-debug: build-debug
	OXMALLOC_LIB=$(CURDIR)/$(LIB_DEBUG) $(CARGO) test --no-default-features --test ctests

programs: build
	OXMALLOC_LIB=$(CURDIR)/$(LIB) scripts/run-programs.sh

run: build
	scripts/oxrun $(CMD)

# The benchmark suite: every workload under oxmalloc, glibc, jemalloc, mimalloc, tcmalloc
# (tables, target/bench/{results,summary}.csv, target/bench/chart.svg). QUICK=1 for a short run.
bench: build
	scripts/bench.sh

# The foundation issue's two figures: ns per malloc+free pair and cross-class reuse RSS.
bench-foundation: build
	scripts/measure-foundation.sh

install: build
	install -D -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/liboxmalloc.so
	install -D -m 0644 include/oxmalloc.h $(DESTDIR)$(PREFIX)/include/oxmalloc.h
	mkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' oxmalloc.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/oxmalloc.pc

clean:
	$(CARGO) clean
