# Faultline's build entry points. Cargo does the building; this file names the steps.

CARGO ?= cargo
# Where cargo puts its output (honours CARGO_TARGET_DIR like cargo does).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

WASM_TARGET := wasm32-wasip2
# Bundled plugins, copied beside the bundled rules; test plugins stay in the target dir.
PLUGINS := threshold webhook log-count topology log-hotspot metric-deviation kubernetes kafka \
	slack pagerduty email ratio burn-rate absent rate frequency spike flatline new-term anomaly
TEST_PLUGINS := sandbox-loop sandbox-alloc sandbox-trap sandbox-abuse
PLUGIN_OUT := $(TARGET_DIR)/$(WASM_TARGET)/plugin
RULES_PLUGINS := rules/plugins

.PHONY: plugins run test bench build-deps test-deps

## run: build the bundled plugins, then run Faultline on rules/ (http://127.0.0.1:9797).
run: plugins
	$(CARGO) run -p faultline -- serve

## test: install what the tests talk to if missing, build the plugins, the binary and the
## tests, then run every test of the workspace. The binary is built in the same cargo call
## as the tests, so it shares their feature resolution and nothing is compiled twice.
test: test-deps plugins
	$(CARGO) build --workspace --bins --tests
	$(CARGO) test --workspace

## bench: the criterion benchmarks (release build).
bench: plugins
	$(CARGO) bench -p faultline

## build-deps / test-deps: what building (and testing) needs besides Rust, installed when
## missing: see scripts/install-deps.sh. The Wasm target comes with rust-toolchain.toml;
## it is added here too for rustups that do not install a toolchain file's targets.
build-deps:
	rustup target add $(WASM_TARGET)
	scripts/install-deps.sh build
test-deps: build-deps
	scripts/install-deps.sh test

## plugins: build every plugin as a Wasm component (profile `plugin`), then copy the
## bundled ones to rules/plugins/.
plugins: build-deps
	$(CARGO) build --profile plugin --target $(WASM_TARGET) $(addprefix -p ,$(PLUGINS) $(TEST_PLUGINS))
	mkdir -p $(RULES_PLUGINS)
# Cargo names a `log-count` crate's output log_count.wasm; rules name it `log-count`.
	for p in $(PLUGINS); do cp $(PLUGIN_OUT)/$$(echo $$p | tr - _).wasm $(RULES_PLUGINS)/$$p.wasm; done
