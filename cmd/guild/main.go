// Command guild is the command-line tool of the guild game-server framework.
//
// Usage:
//
//	guild <command> [flags]
//
// The commands are:
//
//	demo     run the arena demo, a small multiplayer game, and serve its page
//	node     run one cluster node until interrupted
//	run      run a node of a cluster file until interrupted
//	status   list the nodes of a cluster file's cluster
//	reload   reload the data tables of a node, or of every node
//	gen      compile .proto files into Go messages and guild services
//	console  talk to a gateway interactively, one command per line
//	bot      load-test a gateway with many scripted clients
//	token    print a signed token for a user, for a gateway's jwt_secret
//	version  print the version of guild and of Go
//	help     print this help, or the help of one command
//
// Run "guild help <command>" for a command's flags.
//
// The demo (examples/demo) is linked by default; a production build can
// leave it and every other package under examples/ out:
//
//	go build -tags guild_nodemo ./cmd/guild
//
// Such a build has no demo command, and guild run places only modules
// that it registers (none). examples/demo's package doc says why.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// version is guild's version, which a release build sets at link time:
// go build -ldflags "-X main.version=v0.2.0" ./cmd/guild. guild run
// publishes it in its node's member record (app.WithVersion), where guild
// status shows it. (In this package's test binary the variable is
// github.com/guildkit/guild/cmd/guild.version, not main.version:
// TestRollingUpgradeProcesses builds two.)
var version = "0.1.0-dev"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand. run parses its own flags from args and returns
// the exit code; given -h, it prints its help to stderr and returns exitOK.
// flags returns a new flag set of the command, the one run parses, whose
// values nothing reads: it checks a command line without running it.
// operands says whether arguments may follow the flags.
type command struct {
	name     string
	summary  string
	run      func(args []string, stdout, stderr io.Writer) int
	flags    func(stderr io.Writer) *flag.FlagSet
	operands bool
}

func commands() []command {
	return append(demoCommands(), []command{
		{"node", "run one cluster node until interrupted", runNodeCmd,
			func(w io.Writer) *flag.FlagSet { return nodeFlags(new(nodeOptions), w) }, false},
		{"run", "run a node of a cluster file until interrupted", runRunCmd,
			func(w io.Writer) *flag.FlagSet { return runFlags(new(runOptions), w) }, false},
		{"status", "list the nodes of a cluster file's cluster", runStatus,
			func(w io.Writer) *flag.FlagSet { return statusFlags(new(statusOptions), w) }, false},
		{"reload", "reload the data tables of a node, or of every node", runReload,
			func(w io.Writer) *flag.FlagSet { return reloadFlags(new(reloadOptions), w) }, false},
		{"gen", "compile .proto files into Go messages and guild services", runGen,
			func(w io.Writer) *flag.FlagSet { return genFlags(new(genParams), w) }, true},
		{"console", "talk to a gateway interactively, one command per line", runConsole,
			func(w io.Writer) *flag.FlagSet { return consoleFlags(new(consoleOptions), w) }, false},
		{"bot", "load-test a gateway with many scripted clients", runBot,
			func(w io.Writer) *flag.FlagSet { return botFlags(new(botOptions), w) }, false},
		{"token", "print a signed token for a user, for a gateway's jwt_secret", runToken,
			func(w io.Writer) *flag.FlagSet { return tokenFlags(new(tokenOptions), w) }, false},
		{"version", "print the version of guild and of Go", runVersion, versionFlags, false},
		{"help", "print this help, or the help of one command", runHelp, helpFlags, true},
	}...)
}

// run runs the guild command with args (without the program name) and
// returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return exitOK
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	if cmd, ok := lookup(args[0]); ok {
		return cmd.run(args[1:], stdout, stderr)
	}
	if args[0] == "demo" && noDemo != "" {
		fmt.Fprintln(stderr, noDemo)
		return exitUsage
	}
	fmt.Fprintf(stderr, "guild: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func lookup(name string) (command, bool) {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd, true
		}
	}
	return command{}, false
}

// usage prints the list of commands.
func usage(w io.Writer) {
	fmt.Fprint(w, "guild is the command-line tool of the guild game-server framework.\n\n"+
		"Usage:\n\n\tguild <command> [flags]\n\nThe commands are:\n\n")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "\t%-8s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprint(w, "\nRun \"guild help <command>\" for a command's flags.\n")
}

// newFlagSet makes a command's flag set, whose errors and help go to stderr.
func newFlagSet(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: guild %s\n\n%s\n", synopsis, about)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses a command's flags and rejects arguments left over. When it
// returns false, the command should exit with code.
func parse(fs *flag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, exitOK
		}
		return false, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "guild %s: unexpected argument %q\n\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return false, exitUsage
	}
	return true, exitOK
}

// helpFlags returns the flag set of guild help, which has no flags.
func helpFlags(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("help", flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// runHelp prints the usage, or one command's help.
func runHelp(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		usage(stdout)
		return exitOK
	case 1:
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, "usage: guild help [command]\n\nHelp prints the list of commands, or the help of one command.\n")
			return exitOK
		}
		if cmd, ok := lookup(args[0]); ok {
			return cmd.run([]string{"-h"}, stdout, stdout)
		}
		if args[0] == "demo" && noDemo != "" {
			fmt.Fprintln(stderr, noDemo)
			return exitUsage
		}
		fmt.Fprintf(stderr, "guild help: unknown command %q\n\n", args[0])
	default:
		fmt.Fprint(stderr, "guild help: too many arguments\n\n")
	}
	usage(stderr)
	return exitUsage
}

// versionFlags returns the flag set of guild version, which has no flags.
func versionFlags(stderr io.Writer) *flag.FlagSet {
	return newFlagSet("version", "version", "Version prints the version of guild and of the Go toolchain that built it.", stderr)
}

// runVersion prints guild's version and the Go version it was built with.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := versionFlags(stderr)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	goVersion := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok && bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(stdout, "guild %s (%s %s/%s)\n", version, goVersion, runtime.GOOS, runtime.GOARCH)
	return exitOK
}
