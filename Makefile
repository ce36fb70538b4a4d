# The README's two commands: `make demo` (the main job) and `make test`.
# Both do the whole set-up on a fresh Debian 12 machine first.
CARGO ?= cargo
VIDCAP := target/release/vidcap

.PHONY: setup build demo test bench
setup:
	scripts/setup_system.sh

build: setup
	$(CARGO) build --release --locked

demo: build
	scripts/demo.sh

test: setup
	$(CARGO) test --release --locked

bench: build
	scripts/bench.sh
