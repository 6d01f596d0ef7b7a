// Command protoc-gen-guild is the protoc and buf plugin that generates
// guild's typed RPC code (servers, clients) from the services of .proto
// files, next to protoc-gen-go's messages. "guild gen" runs the same
// generator without protoc. With protoc:
//
//	go install github.com/guildkit/guild/cmd/protoc-gen-guild@latest
//	protoc --go_out=. --go_opt=paths=source_relative \
//	       --guild_out=. --guild_opt=paths=source_relative chat.proto
//
// With buf, add to buf.gen.yaml:
//
//	plugins:
//	  - local: protoc-gen-guild
//	    out: .
//	    opt: paths=source_relative
package main

import (
	"google.golang.org/protobuf/compiler/protogen"

	"github.com/guildkit/guild/rpc/rpcgen"
)

func main() {
	protogen.Options{}.Run(rpcgen.Generate)
}
