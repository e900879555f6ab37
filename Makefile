# Build, test and demo entry points. `make` builds bin/chatd and bin/chat;
# `make test` installs missing packages, then runs unit and end-to-end tests,
# once as a normal build and once under AddressSanitizer + UBSan.

CC      ?= cc
PKGS    := libwebsockets libuv jansson sqlite3 libsodium libpq
SAN     ?= 0

ifeq ($(SAN),1)
OUT     := build/asan
BINDIR  := build/asan/bin
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT     := -O1
else
OUT     := build/release
BINDIR  := bin
SANFLAGS :=
OPT     := -O2
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# The terminal UI (client/ui*.c); only bin/chat and tests link it.
UI_LIBS    := $(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncursesw -ltinfo)
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror \
           -Ishared -Iserver -Iclient -I$(OUT)/gen $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS := $(SANFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm

SHARED_SRC := $(wildcard shared/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
CLIENT_SRC := $(filter-out client/main.c,$(wildcard client/*.c))
UNIT_SRC   := $(wildcard tests/test_*.c)
E2E_SRC    := $(wildcard tests/e2e/test_*.c)
E2E_LIB    := $(filter-out $(E2E_SRC),$(wildcard tests/e2e/*.c))
HARNESS_SRC := $(wildcard tests/e2e/harness_*.c)
UI_TEST_SRC := $(wildcard tests/ui/test_*.c)
UI_TEST_LIB := $(filter-out $(UI_TEST_SRC),$(wildcard tests/ui/*.c))
MIGRATIONS := $(sort $(wildcard db/migrations/*.sql))

obj = $(patsubst %.c,$(OUT)/obj/%.o,$(1))

LIB_SHARED := $(OUT)/libshared.a
LIB_SERVER := $(OUT)/libserver.a
LIB_CLIENT := $(OUT)/libclient.a
UNIT_BINS  := $(patsubst tests/%.c,$(OUT)/tests/%,$(UNIT_SRC))
E2E_BINS   := $(patsubst tests/e2e/%.c,$(OUT)/tests/e2e/%,$(E2E_SRC))
UI_BINS    := $(patsubst tests/ui/%.c,$(OUT)/tests/ui/%,$(UI_TEST_SRC))

.PHONY: certs all deps test test-unit test-e2e test-ui check check-layers clean demo valgrind test-e2e-ui
all: $(BINDIR)/chatd $(BINDIR)/chat

deps:
	@scripts/install-deps.sh

$(OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The schema migrations are compiled into chatd so a fresh database needs no files.
$(OUT)/gen/migrations.h: $(MIGRATIONS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh $(MIGRATIONS) > $@
$(OUT)/obj/server/store_sqlite.o: $(OUT)/gen/migrations.h
# The PostgreSQL schema (db/pg) likewise, for server/pg_conn.c.
PG_MIGRATIONS := $(sort $(wildcard db/pg/*.sql))
$(OUT)/gen/pg_migrations.h: $(PG_MIGRATIONS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	scripts/embed-sql.sh -n PG_MIGRATIONS $(PG_MIGRATIONS) > $@.tmp && mv $@.tmp $@
$(OUT)/obj/server/pg_conn.o: $(OUT)/gen/pg_migrations.h
# The web client (web/: the page, its style and its JavaScript modules),
# likewise compiled in, so bin/chatd alone serves it (server/web_files.c).
WEB_FILES := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))
$(OUT)/gen/web_assets.h: $(WEB_FILES) scripts/embed-web.sh
	@mkdir -p $(dir $@)
	scripts/embed-web.sh web $(WEB_FILES) > $@.tmp && mv $@.tmp $@
$(OUT)/obj/server/web_files.o: $(OUT)/gen/web_assets.h

$(LIB_SHARED): $(call obj,$(SHARED_SRC))
$(LIB_SERVER): $(call obj,$(SERVER_SRC))
$(LIB_CLIENT): $(call obj,$(CLIENT_SRC))
$(OUT)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BINDIR)/chatd: $(call obj,server/main.c) $(LIB_SERVER) $(LIB_SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BINDIR)/chat: $(call obj,client/main.c) $(LIB_CLIENT) $(LIB_SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(UI_LIBS)

# Static pattern rules: each binary list gets its own rule, whatever
# objects exist already (a plain pattern rule could pick the unit tests' one
# for a UI test whose new helper object is not built yet).
$(UNIT_BINS): $(OUT)/tests/%: $(call obj,tests/%.c) $(LIB_SERVER) $(LIB_CLIENT) $(LIB_SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(UI_LIBS) -lcmocka
$(E2E_BINS): $(OUT)/tests/e2e/%: $(call obj,tests/e2e/%.c) $(call obj,$(E2E_LIB)) $(LIB_SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
# UI tests: the real bin/chat in tmux, with the e2e harness (every
# tests/e2e/harness_*.c part) for the server.
$(UI_BINS): $(OUT)/tests/ui/%: $(call obj,tests/ui/%.c) $(call obj,$(UI_TEST_LIB)) $(call obj,$(HARNESS_SRC)) $(LIB_SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# scripts/run-tests.sh runs two test binaries at once (TEST_JOBS), except
# those named here, which measure rates against the clock and run alone.
export TEST_ALONE := test_limits
# ... and these, the slowest, start first (see run-tests.sh; the times
# each took are in the CI log): test_limits first, as it would otherwise
# wait for both slots to drain, one of them idle.
export TEST_FIRST := test_limits test_cluster_faults test_presence test_bank test_reliability test_ui test_sse \
                     test_failover test_session_end test_rooms_ui test_hostile_server test_rfc6455 \
                     test_chat test_delivery test_client_rooms test_rooms

test-unit: $(UNIT_BINS)
	@scripts/run-tests.sh $(UNIT_BINS)
# test_cluster and test_cluster_faults need PostgreSQL and HAProxy: they run
# in test-cluster only.
CLUSTER_BIN := $(OUT)/tests/e2e/test_cluster $(OUT)/tests/e2e/test_cluster_faults
E2E_SOLO    := $(filter-out $(CLUSTER_BIN),$(E2E_BINS))
test-e2e: all $(E2E_SOLO)
	@CHATD_BIN=$(BINDIR)/chatd CHAT_BIN=$(BINDIR)/chat scripts/run-tests.sh $(E2E_SOLO)
test-ui: all $(UI_BINS)
	@CHATD_BIN=$(BINDIR)/chatd CHAT_BIN=$(BINDIR)/chat scripts/run-tests.sh $(UI_BINS)
# make check runs the two in one go, so that two binaries at a time pack well.
test-e2e-ui: all $(E2E_SOLO) $(UI_BINS)
	@CHATD_BIN=$(BINDIR)/chatd CHAT_BIN=$(BINDIR)/chat scripts/run-tests.sh $(E2E_SOLO) $(UI_BINS)
check: test-unit test-e2e-ui

# The server's layering rule (scripts/check-layers.sh, its table at the top):
# every include, and every call between the built objects, goes down the
# layers; then its own test, which plants violations and expects failures;
# then every function docs/ARCHITECTURE.md names must exist (check-docs.sh),
# and no header or global symbol name is used twice (check-names.sh).
check-layers: all
	@scripts/check-layers.sh --objs $(OUT)/obj
	@scripts/check-names.sh --libs "$(LIB_SERVER) $(LIB_CLIENT) $(LIB_SHARED)"
	@tests/layers/test_check_layers.sh
	@scripts/check-docs.sh
check: check-layers

# The store tests on PostgreSQL, against a throwaway cluster (scripts/with-pg.sh
# exports its URL as CHAT_TEST_PG). CHAT_TEST_PG_REQUIRED makes a missing
# CHAT_TEST_PG a failure there instead of a skip.
.PHONY: test-unit-pg
test-unit-pg: $(OUT)/tests/test_store $(OUT)/tests/test_store_pg
	@CHAT_TEST_PG_REQUIRED=1 scripts/with-pg.sh scripts/run-tests.sh $^

# Scale-out (deploy/haproxy.cfg.in, scripts/cluster.sh), each against a
# throwaway PostgreSQL cluster of its own (scripts/with-pg.sh sets
# CHAT_TEST_PG): test-e2e-pg is the e2e suite with every chatd on a fresh
# PostgreSQL database instead of SQLite; test-cluster is test_cluster.c:
# several chatd on one database behind HAProxy, failover, ordering and
# transfers across instances (left out of test-e2e-pg so it runs once).
# `make check` runs them, and test-unit-pg, in the normal pass only: the
# SAN=1 pass re-runs the SQLite suites under ASan/UBSan, which cover the
# same server code except store_pg.c (test-unit-pg's own ground), and a
# second full PostgreSQL round under the sanitizers would add minutes to
# every CI run for little.

.PHONY: test-e2e-pg test-cluster demo-cluster
# The PostgreSQL round leaves out the binaries that never reach the store
# in a way SQLite would not show the same: a fake server (test_hostile_server),
# the HTTP, WebSocket, TLS and browser-rule framing tests, and the limits
# (rates and connection counts, decided before any store call; it runs
# alone, so on PostgreSQL too it would leave a CPU idle for its whole run).
E2E_PG := $(filter-out $(addprefix $(OUT)/tests/e2e/,test_hostile_server test_rfc6455 \
            test_http_strict test_tls test_browser_auth test_limits),$(E2E_SOLO))
test-e2e-pg: all $(E2E_PG)
	@CHATD_BIN=$(BINDIR)/chatd CHAT_BIN=$(BINDIR)/chat CHAT_TEST_PG_REQUIRED=1 \
	  scripts/with-pg.sh scripts/run-tests.sh $(E2E_PG)
test-cluster: all $(CLUSTER_BIN)
	@TEST_JOBS=1 CHATD_BIN=$(BINDIR)/chatd CHAT_BIN=$(BINDIR)/chat CHAT_TEST_PG_REQUIRED=1 \
	  scripts/with-pg.sh scripts/run-tests.sh $(CLUSTER_BIN)
ifneq ($(SAN),1)
check: test-unit-pg test-e2e-pg
ifneq ($(CLUSTER_LATER),1)
check: test-cluster
endif
endif

# The web client in a real browser (tests/browser/test_browser.py): headless
# Chromium driven by Selenium (chromium-driver, python3-selenium: Debian's
# python, not a pyenv one), against a chatd of its own. Normal pass only:
# the browser runs the same server code the e2e suite runs under the
# sanitizers.
.PHONY: test-browser
test-browser: all
	@/usr/bin/python3 tests/browser/test_browser.py --chatd $(BINDIR)/chatd --chat $(BINDIR)/chat
ifneq ($(SAN),1)
check: test-browser
endif
# The same run, writing screenshots of the pages for the README.
.PHONY: screenshots
screenshots: all
	@/usr/bin/python3 tests/browser/test_browser.py --chatd $(BINDIR)/chatd --chat $(BINDIR)/chat --screenshots docs/screenshots

# The chat end-to-end run with every chatd and chat process under valgrind,
# on SQLite and then on PostgreSQL;
# a leak or memory error makes the process, and so the test, fail.
VALGRIND := valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99
valgrind: all $(OUT)/tests/e2e/test_chat
	@E2E_WRAP="$(VALGRIND)" CHATD_BIN=$(BINDIR)/chatd CHAT_BIN=$(BINDIR)/chat \
	  scripts/run-tests.sh $(OUT)/tests/e2e/test_chat
	@E2E_WRAP="$(VALGRIND)" CHATD_BIN=$(BINDIR)/chatd CHAT_BIN=$(BINDIR)/chat CHAT_TEST_PG_REQUIRED=1 \
	  scripts/with-pg.sh scripts/run-tests.sh $(OUT)/tests/e2e/test_chat

# Fuzzing: a libFuzzer target (clang, ASan + UBSan) for every parser of
# untrusted input, tests/fuzz/fuzz_*.c, seeds in tests/fuzz/corpus/<target>/.
# `make fuzz` runs each for FUZZ_SECONDS; `make check` runs each for a fixed
# FUZZ_RUNS inputs from a fixed seed (check-fuzz).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_RUNS    ?= 20000
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_LIBSRC  := $(SHARED_SRC) client/core.c client/commands.c client/body_buf.c client/ws_reasm.c \
                client/roomlist.c
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -Ishared -Iclient \
                $(shell pkg-config --cflags jansson libsodium 2>/dev/null) -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
.PHONY: fuzz check-fuzz
build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_LIBSRC) $(wildcard shared/*.h client/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIBSRC) $(shell pkg-config --libs jansson libsodium 2>/dev/null)
fuzz: $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh time $(FUZZ_BINS)
check-fuzz: $(FUZZ_BINS)
	@FUZZ_RUNS=$(FUZZ_RUNS) tests/fuzz/run.sh runs $(FUZZ_BINS)
# Once: the fuzz targets are built with the sanitizers whatever SAN says,
# so the SAN=1 pass would run the same binaries on the same inputs again.
ifneq ($(SAN),1)
check: check-fuzz
endif

# Benchmarks (tests/bench/): bin/chat-bench runs simulated users on the
# client's own transports against a chatd it starts. `make bench` is the
# short standard scenario on each transport, `make bench-full` the long one
# and the capacity modes (tests/bench/full.sh); results go to build/bench/.
# check-bench is a few-second smoke run that asserts correctness only.
BENCH_SRC   := $(wildcard tests/bench/*.c)
BENCH_OUT   ?= build/bench
BENCH_FLAGS ?=
.PHONY: bench bench-full check-bench
$(BINDIR)/chat-bench: $(call obj,$(BENCH_SRC)) $(LIB_CLIENT) $(LIB_SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(UI_LIBS)
bench: all $(BINDIR)/chat-bench
	$(BINDIR)/chat-bench --transport all --duration 5 --idle 5 --cpus split --out $(BENCH_OUT) $(BENCH_FLAGS)
bench-full: all $(BINDIR)/chat-bench
	BENCH=$(BINDIR)/chat-bench BENCH_OUT=$(BENCH_OUT) tests/bench/full.sh $(BENCH_FLAGS)
# bench-cluster: chat-bench against 1, 2 and 3 chatd behind HAProxy on one
# PostgreSQL (tests/bench/cluster.sh): fan-out deliveries/s, persisted
# sends/s, latency. Not in make test.
.PHONY: bench-cluster
bench-cluster: all $(BINDIR)/chat-bench
	BENCH=$(BINDIR)/chat-bench BENCH_OUT=$(BENCH_OUT) tests/bench/cluster.sh $(BENCH_FLAGS)
# Issue 18 (tests/bench/README.md): bench-login seeds a database with
# 1,000,000 events once (tests/bench/seed-events.sh, kept in build/bench/)
# and times a v1.1 client's start on each transport (bench-login-pg: the same
# on a throwaway PostgreSQL); bench-rooms is the fan-out to 100 rooms of 100
# members, after the one-room fan-out to as many for comparison (at a rate
# the generator keeps up with on a shared 2-CPU machine; BENCH_FLAGS="--rate
# 25 --cpus split" for the README's 250,000 deliveries/s offered, on a quiet one).
.PHONY: bench-login bench-login-pg bench-rooms
bench-login: all $(BINDIR)/chat-bench
	BENCH=$(BINDIR)/chat-bench BENCH_OUT=$(BENCH_OUT) tests/bench/login.sh sqlite --cpus split $(BENCH_FLAGS)
bench-login-pg: all $(BINDIR)/chat-bench
	BENCH=$(BINDIR)/chat-bench BENCH_OUT=$(BENCH_OUT) tests/bench/login.sh pg --cpus split $(BENCH_FLAGS)
bench-rooms: all $(BINDIR)/chat-bench
	$(BINDIR)/chat-bench --rooms-fanout 100 --members 100 --rate 2 --duration 10 --out $(BENCH_OUT) $(BENCH_FLAGS)
check-bench: all $(BINDIR)/chat-bench
	@$(BINDIR)/chat-bench --smoke --out $(OUT)/bench-smoke
check: check-bench

# make test: the normal pass, then the same under the sanitizers. test-cluster
# runs one binary at a time (its faults stop the PostgreSQL both binaries
# share), which leaves a CPU free: the sanitizer build takes it meanwhile
# (one compiler at a time, so the cluster keeps the other CPU).
test: deps
	$(MAKE) --no-print-directory CLUSTER_LATER=1 check
	$(MAKE) --no-print-directory -j2 -Otarget test-cluster san-build
	$(MAKE) --no-print-directory SAN=1 check
.PHONY: san-build tests-built
san-build:
	@MAKEFLAGS= $(MAKE) --no-print-directory SAN=1 tests-built >/dev/null
	@echo "sanitizer build done"
tests-built: all $(UNIT_BINS) $(E2E_SOLO) $(UI_BINS) $(BINDIR)/chat-bench

# A local CA and a server certificate for https:// and wss:// (certs/).
certs:
	@scripts/make-certs.sh certs

demo: deps all
	@scripts/demo.sh $(TRANSPORT)
# Two chatd instances on PostgreSQL behind HAProxy and the same two-client
# demo through the balancer; it prints the kill -9 command to try a failover.
demo-cluster: deps all
	@scripts/cluster.sh demo $(TRANSPORT)

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
