module github.com/guildkit/guild

go 1.26

require go.uber.org/goleak v1.3.0

require google.golang.org/protobuf v1.36.12
