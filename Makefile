# guild's developer commands. `make test` is the README's test command.
.PHONY: test demo bench

test:
	bash scripts/test.sh

demo:
	go run ./cmd/guild demo

# Benchmarks of the runtime and against peer frameworks; see docs/PERFORMANCE.md.
bench:
	go test -run '^$$' -bench . -benchmem ./actor/ ./timer/
	cd bench && go test -run '^$$' -bench . -benchmem ./...
