# guild's developer commands. `make test` is the README's test command.
.PHONY: test demo bench gen

test:
	bash scripts/test.sh

demo:
	go run ./cmd/guild demo

# Regenerates the repository's generated code from its .proto files; CI
# fails when this would change a file. It needs no protoc: see "guild help gen".
# Regenerates the committed generated code. Paths are relative to the
# repository root, so that each .proto's registered name is unique (a bare
# "rpc.proto" would clash with etcd's).
gen:
	go run ./cmd/guild gen rpc/rpcpb/rpc.proto rpc/internal/echopb/echo.proto examples/echo/echopb/echo.proto \
		gate/gatepb/gate.proto gate/internal/nodepb/node.proto examples/arena/arenapb/arena.proto \
		examples/players/playerspb/players.proto grain/grainpb/grain.proto \
		propsync/propsyncpb/propsync.proto propsync/internal/testpb/test.proto \
		propsync/internal/kindspb/kinds.proto

# Benchmarks of the runtime and against peer frameworks; see docs/PERFORMANCE.md.
bench:
	go test -run '^$$' -bench . -benchmem ./actor/ ./timer/
	cd bench && go test -run '^$$' -bench . -benchmem ./...
