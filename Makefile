# bbmaster: developer and operator targets.
#   make run      a demo master (SQLite, scripts/demo-master.lua) with a real buildbot-worker
#                 that builds this repository and runs its unit tests
#   make test     unit, integration (real buildbot-worker; the web UI in headless chromium),
#                 ASan+UBSan, TSan and fuzz runs
# Operator targets act on the master directory MASTER (default ./master), as the
# buildmaster-config Makefile does: start-master, stop-master, restart-master,
# check (checkconfig), create-master, reconfig, update-master (pull, then check and
# reconfig only when something changed: scripts/update-master.sh); worker-password
# prints a new worker password (14 letters and digits).

MASTER ?= ./master
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 5
BBMASTER = $(BUILD)/src/bbmaster
PYTEST = /usr/bin/python3 -m pytest
# The integration tests mostly wait on real workers and servers: two at a time, one
# file per process (each file's fixtures stay in one process).
PYTEST_PAR = -n 2 --dist loadfile --durations=25

.PHONY: all deps build test unit integration asan tsan fuzz bench run format \
	create-master start-master stop-master restart-master reconfig check clean \
	update-master worker-password

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	@ln -sf src/bbmaster $(BUILD)/bbmaster

unit: build
	scripts/with-pg.sh meson test -C $(BUILD) --suite unit --print-errorlogs

integration: build
	BBMASTER=$(abspath $(BBMASTER)) $(PYTEST) -q $(PYTEST_PAR) tests/integration

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		scripts/with-pg.sh meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		BBMASTER=$(abspath $(ASAN_BUILD)/src/bbmaster) BBM_SANITIZED=1 $(PYTEST) -q $(PYTEST_PAR) tests/integration

# ThreadSanitizer on what crosses threads: the control queue, the log and the log chunks'
# packer (unit), and the web's suspended POSTs, their watchdog and the engine's answers,
# request threads that all log, the WAL checkpoint thread beside the engine and web
# readers while another process locks the database, live events: the engine's bus, the web's dispatcher,
# suspended SSE streams resumed from it and the WebSocket thread, and request threads
# counting the same log's bytes for byte ranges beside gzip streams and searches, and
# pages rendered on their own threads for suspended connections, and GitHub logins
# waiting on their own loop while their connections are suspended, and the reports' thread
# (its own configuration, reloaded at a reconfig) and the mailer's beside the loop, and the
# packer's thread while chunks past the database's bound are refused, and bbworker beside
# libuv's pool, and reads of the API and pieces of streamed answers made on the threads for
# slow reads while their connections are suspended (integration).
TSAN_TESTS = tests/integration/test_control.py \
	tests/integration/test_bbworker.py::test_shell_details_and_directory_commands \
	tests/integration/test_bbworker.py::test_output_back_pressure \
	tests/integration/test_bbworker.py::test_worker_killed_mid_step_retries_with_bbworker \
	tests/integration/test_faults.py::test_past_the_bound_the_build_fails_explicitly \
	tests/integration/test_events.py::test_sse_build_events_are_the_api_entities \
	tests/integration/test_events.py::test_ws_like_buildbot \
	tests/integration/test_api.py::test_control_requests_like_buildbot \
	tests/integration/test_web_limits.py::test_a_flood_of_one_error_is_summed_up_in_the_log \
	tests/integration/test_web_limits.py::test_slow_reads_leave_the_request_threads_free \
	"tests/integration/test_web_limits.py::test_reads_too_slow_for_a_request_thread_are_made_elsewhere[sqlite]" \
	tests/integration/test_faults.py::test_sqlite_locked_by_another_process \
	tests/integration/test_web_extras.py::test_many_clients_at_once \
	tests/integration/test_ui.py::test_pages_for_many_clients_at_once_and_a_stop_meanwhile \
	tests/integration/test_github_auth.py::test_github_login_graphql_teams \
	tests/integration/test_reporters.py::test_the_reports_thread_follows_reconfigs \
	tests/integration/test_reporters.py::test_a_relay_slow_to_answer_holds_no_build \
	tests/integration/test_reporters_buildset.py::test_buildset_mail \
	tests/integration/test_github_auth.py::test_stopping_answers_a_login_waiting_for_github

$(TSAN_BUILD)/build.ninja:
	meson setup $(TSAN_BUILD) -Db_sanitize=thread -Db_lundef=false

# Only what the TSan runs use is built: the master (both its programs) and the unit tests of those suites.
TSAN_TARGETS = src/bbmaster src/bbmaster-core tests/unit/util/test_log tests/unit/control/test_control \
	tests/unit/events/test_events tests/unit/engine/test_logs worker/bbworker

tsan: deps $(TSAN_BUILD)/build.ninja
	ninja -C $(TSAN_BUILD) $(TSAN_TARGETS)
	TSAN_OPTIONS=halt_on_error=1 meson test -C $(TSAN_BUILD) --no-rebuild --suite control \
		--suite threads --print-errorlogs
	BBMASTER=$(abspath $(TSAN_BUILD)/src/bbmaster) BBM_SANITIZED=1 $(PYTEST) -q $(TSAN_TESTS)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	for t in pb broker config query rpc force github html ws headers junit session digest push irc endpoint re; do \
		mkdir -p $(FUZZ_BUILD)/corpus-$$t && \
		$(FUZZ_BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$(FUZZ_BUILD)/corpus-$$t fuzz/corpus/$$t || exit 1; \
	done

test: unit fuzz integration asan tsan

bench: build
	/usr/bin/python3 bench/config-scale --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/api/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/dispatch/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/logs/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/search/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/webhook/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/abuse/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/ui/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/reporters/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/release/run --bbmaster $(abspath $(BBMASTER))
	/usr/bin/python3 bench/worker/run --bbmaster $(abspath $(BBMASTER))

run: build
	sh scripts/run-demo.sh $(BBMASTER) .run/master

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

create-master: build
	$(BBMASTER) create-master $(MASTER)

start-master: build
	$(BBMASTER) start $(MASTER)

stop-master: build
	$(BBMASTER) stop $(MASTER)

restart-master: build
	$(BBMASTER) restart $(MASTER)

reconfig: build
	$(BBMASTER) reconfig $(MASTER)

check: build
	$(BBMASTER) checkconfig $(MASTER)

update-master:
	sh scripts/update-master.sh $(abspath $(BBMASTER)) $(MASTER)

worker-password:
	@/usr/bin/python3 -c 'import secrets, string; \
	a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(14)))'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
