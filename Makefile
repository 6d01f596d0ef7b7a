# guild's developer commands. `make test` is the README's test command.
.PHONY: test demo bench gen

test:
	bash scripts/test.sh

demo:
	go run ./cmd/guild demo

# Regenerates the repository's generated code from its .proto files; CI
# fails when this would change a file. It needs no protoc: see "guild help gen".
gen:
	go run ./cmd/guild gen -I rpc/rpcpb -out rpc/rpcpb rpc/rpcpb/rpc.proto
	go run ./cmd/guild gen -I rpc/internal/echopb -out rpc/internal/echopb rpc/internal/echopb/echo.proto

# Benchmarks of the runtime and against peer frameworks; see docs/PERFORMANCE.md.
bench:
	go test -run '^$$' -bench . -benchmem ./actor/ ./timer/
	cd bench && go test -run '^$$' -bench . -benchmem ./...
