package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/app/brokers"
	"github.com/guildkit/guild/config"
)

// runAbout is the help text of guild run.
const runAbout = `Run starts one node of a cluster file and runs it until SIGINT or SIGTERM,
then drains it and exits 0. The node joins marked unavailable and takes work
once its modules have started. On a signal it marks itself unavailable,
shuts its gateway down (the requests it forwarded are answered, its clients
told it is going away), stops its modules in reverse order (grains are
handed over), drains its actors, and only then leaves the cluster.

The cluster file (YAML, see docs/CONFIG.md) lists the cluster's nodes: each
one's address, listeners, modules and gateway. Every field can be overridden
by an environment variable GUILD_<PATH>, e.g. GUILD_NODES_GATE1_LISTEN or
GUILD_CLUSTER_ETCD_ENDPOINTS=http://10.0.0.1:2379. The file is checked as a
whole before anything starts: guild run lists every problem, one per line,
and exits 2.

When the node is ready it prints one JSON line to stdout:

	{"event":"ready","node":"gate1","addr":"1.1.1","endpoint":"127.0.0.1:40123",
	 "etcd":["http://127.0.0.1:2379"],"gateway":{"tcp":"tcp://127.0.0.1:7000"},
	 "modules":["arena"],"version":"0.1.0-dev","pid":12345}

endpoint is the transport's address, etcd the endpoints the node uses (for
the master, those of its own etcd), gateway the URLs clients dial; metrics
and admin, when the node serves them, the URLs of its /metrics and of its
admin dashboard; version the build's (guild version), which the node also
publishes in its member record for guild status. A drain from the admin dashboard shuts the node down as a
signal would, and guild run exits 0. Logs go to stderr.`

// runOptions are the flags of guild run.
type runOptions struct {
	file            string
	node            string
	shutdownTimeout time.Duration
}

// runRunCmd is guild run: runApp until SIGINT or SIGTERM.
func runRunCmd(args []string, stdout, stderr io.Writer) int {
	// The binary owns the process's signals; the library never touches them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runApp(ctx, args, os.Environ(), guildModules(), stdout, stderr)
}

// runFlags defines the flags of guild run into opts.
func runFlags(opts *runOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("run", "run -c cluster.yaml -node NAME [flags]", runAbout, stderr)
	fs.StringVar(&opts.file, "c", "", "the cluster `file` (required)")
	fs.StringVar(&opts.node, "node", "", "the `name` of the node to run, a key of the file's nodes (required)")
	fs.DurationVar(&opts.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long the shutdown may take after SIGINT or SIGTERM")
	return fs
}

// runApp parses the flags of guild run, loads the cluster file with the
// overrides in environ, starts the node with the modules of reg and runs
// it until ctx ends, then shuts it down.
func runApp(ctx context.Context, args, environ []string, reg *app.Registry, stdout, stderr io.Writer) int {
	var opts runOptions
	fs := runFlags(&opts, stderr)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "guild run: "+format+"\n\n", a...)
		fs.Usage()
		return exitUsage
	}
	switch {
	case opts.file == "":
		return usageErr("-c is required")
	case opts.node == "":
		return usageErr("-node is required")
	case opts.shutdownTimeout <= 0:
		return usageErr("-shutdown-timeout %v is not positive", opts.shutdownTimeout)
	}
	modules := append([]string{}, reg.Names()...) // not nil: an empty registry has no modules to check against
	cfg, code, ok := loadConfig("run", opts.file, environ, modules, stderr)
	if !ok {
		return code
	}
	if _, ok := cfg.Node(opts.node); !ok {
		fmt.Fprintf(stderr, "guild run: %s has no node %q (it has %s)\n", opts.file, opts.node, strings.Join(cfg.NodeNames(), ", "))
		return exitUsage
	}
	if err := cfg.CheckFiles(opts.node); err != nil { // the files on this machine: its gateway's tokens or secret
		fmt.Fprintf(stderr, "guild run: invalid cluster file:\n%v\n", err)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	node, err := app.Start(ctx, cfg, opts.node, reg, append(brokers.Options(), app.WithLogger(log), app.WithVersion(version))...)
	if err != nil {
		fmt.Fprintf(stderr, "guild run: %v\n", err)
		return exitError
	}
	code = exitOK
	if err := printReady(stdout, node.Ready()); err != nil {
		fmt.Fprintf(stderr, "guild run: %v\n", err)
		code = exitError
	} else {
		select {
		case <-ctx.Done():
		case <-node.Done(): // drained from the admin dashboard
			log.Info("drained from the admin dashboard", "node", opts.node)
		}
	}
	log.Info("shutting down", "node", opts.node, "timeout", opts.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "guild run: shutdown: %v\n", err)
		return exitError
	}
	return code
}

// loadConfig loads a cluster file for command cmd. When ok is false the
// command should exit with code: exitUsage for an invalid file, whose
// problems it printed one per line, exitError when it could not be read.
func loadConfig(cmd, file string, environ, modules []string, stderr io.Writer) (cfg *config.Config, code int, ok bool) {
	cfg, err := config.Load(file, environ, modules)
	switch {
	case err == nil:
		return cfg, exitOK, true
	case errors.Is(err, config.ErrInvalid):
		fmt.Fprintf(stderr, "guild %s: invalid cluster file:\n%v\n", cmd, err)
		return nil, exitUsage, false
	}
	fmt.Fprintf(stderr, "guild %s: %v\n", cmd, err)
	return nil, exitError, false
}

// runReady is the line guild run prints when its node is ready.
type runReady struct {
	Event string `json:"event"`
	app.Ready
	PID int `json:"pid"`
}

// printReady prints the ready line.
func printReady(stdout io.Writer, r app.Ready) error {
	return printJSONLine(stdout, runReady{Event: "ready", Ready: r, PID: os.Getpid()})
}

// printJSONLine writes v as one JSON line, for another program (a test,
// guild demo -nodes 3) to read, and syncs stdout when it can.
func printJSONLine(stdout io.Writer, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("print the ready line: %w", err)
	}
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync() // a pipe or terminal cannot sync; what matters is that the line was written
	}
	return nil
}
