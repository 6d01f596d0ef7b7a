// Package demo is "guild demo": the arena (examples/arena) on one node or
// as three processes (-nodes 3), its page, the admin dashboard, and the
// older chat of actors (-chat, examples/chatroom).
//
// # Why a package of its own
//
// guild's CLI (cmd/guild) is the product: guild run, status, gen, bot,
// token and the others. The demo is not: it is example code, and a team's
// production build of the CLI should not link it. So everything that
// exists only for the demo lives here, and cmd/guild keeps two small files
// behind a build tag:
//
//   - cmd/guild/demo.go (//go:build !guild_nodemo) adds the demo command,
//     which calls Run, and gives guild run the arena's modules through
//     Register, so that the nodes of guild demo -nodes 3 (guild run
//     processes of the same binary) can run them.
//   - cmd/guild/nodemo.go (//go:build guild_nodemo) has neither: such a
//     build links no package under examples/ (a test in cmd/guild checks it
//     with go list -deps), its list of commands has no demo, and guild demo
//     says that this build has none.
//
// The default build keeps the demo, so the README's first hour is
// unchanged: go run ./cmd/guild demo, go run ./cmd/guild demo -nodes 3,
// and the bots of the banner. A production build leaves it out:
//
//	go build -tags guild_nodemo ./cmd/guild
//
// Why a build tag and not a binary of its own (go run ./examples/demo):
// the nodes of -nodes 3 are guild run processes, so a separate demo binary
// would have to carry a copy of guild run, or find and start a guild
// binary built with the arena's modules; and the README's first command
// would change. With the tag, the one binary guild demo runs is the one
// its nodes run, as before, and what leaves the demo out is one flag of
// go build.
//
// In such a build guild bot knows the arena's messages (arena.v1.*) only
// from -proto examples/arena/arenapb/arena.proto, and guild run places only
// the modules that the team's own build registers.
//
// The package is not a library: its API is what cmd/guild needs (Run,
// Flags, Summary and Register). Run takes the process's context and
// writers, and never touches signals: the binary owns them.
package demo
