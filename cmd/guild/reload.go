package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/config"
)

// reloadAbout is the help text of guild reload.
const reloadAbout = `Reload makes a node of a cluster file reload its data tables (the table
sets its modules opened from its tables directory) and its hot-fix modules
(the reloaders its modules added: app.Env.AddReloader), or every node with
-all, and prints, per node, each set's and each module's version before and
after, or the errors that kept it on its old version. A module's line is
named reloader/handler:

	solo (1.1.1): ok
	  shop  3f2a9c0d1e2b  changed, was 9a8b7c6d5e4f
	  shop/counter  5c1f0e9a2b7d  changed, was 83be1c04d2aa
	world1 (1.2.1): FAILED
	  loot  11aa22bb33cc  kept: table set loot:
	    items.csv:3:9: price: "ten" is not a whole number
	  world/combat  0d4e5f6a7b8c  kept: combat.wasm: hotfix: module rejected: combat: compile: ...

It asks the admin API (POST /api/nodes/<addr>/reload), one request per node,
with the admin token of the file (admin.token, admin.token_file, or
GUILD_ADMIN_TOKEN). Any node that serves the dashboard relays the request to
the node it names over the cluster, so the API's address can be any
dashboard's: -admin gives it (the URL in a node's ready line), else the
node's own admin.listen, else the first node of the file that has one (an
address without a host, or 0.0.0.0, is taken as 127.0.0.1). -all asks every
node of the file, since only the node knows which hot-fix modules it runs: a
node with neither tables nor hot-fix modules prints "nothing to reload", and
a node that is not a member (not running) is skipped when its file gives it
no tables directory (it has nothing loaded to reload).

It exits 0 when every set and module reloaded (or had not changed), 1 when
one was rejected, a node could not be asked, or the node of -node has
nothing to reload, and 2 for bad usage or an invalid file.`

// reloadOptions are the flags of guild reload.
type reloadOptions struct {
	file, node, admin string
	all               bool
	timeout           time.Duration
}

// reloadFlags defines the flags of guild reload into opts.
func reloadFlags(opts *reloadOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("reload", "reload -c cluster.yaml (-node NAME | -all) [flags]", reloadAbout, stderr)
	fs.StringVar(&opts.file, "c", "", "the cluster `file` (required)")
	fs.StringVar(&opts.node, "node", "", "the `name` of the node to reload")
	fs.BoolVar(&opts.all, "all", false, "reload every node of the file")
	fs.StringVar(&opts.admin, "admin", "", "the `URL` of a node's admin dashboard (default: from the file's admin.listen)")
	fs.DurationVar(&opts.timeout, "timeout", admin.ReloadTimeout+5*time.Second, "how long to wait for each node")
	return fs
}

// runReload is guild reload.
func runReload(args []string, stdout, stderr io.Writer) int {
	return reloadCmd(context.Background(), args, os.Environ(), stdout, stderr)
}

// reloadCmd runs guild reload with the overrides in environ.
func reloadCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	var opts reloadOptions
	fs := reloadFlags(&opts, stderr)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "guild reload: "+format+"\n\n", a...)
		fs.Usage()
		return exitUsage
	}
	switch {
	case opts.file == "":
		return usageErr("-c is required")
	case opts.node == "" && !opts.all:
		return usageErr("give -node NAME, or -all")
	case opts.node != "" && opts.all:
		return usageErr("-node and -all exclude each other")
	case opts.timeout <= 0:
		return usageErr("-timeout %v is not positive", opts.timeout)
	}
	cfg, code, ok := loadConfig("reload", opts.file, environ, nil, stderr)
	if !ok {
		return code
	}
	targets := []string{opts.node}
	if opts.all {
		targets = cfg.NodeNames()
	} else if _, ok := cfg.Node(opts.node); !ok {
		fmt.Fprintf(stderr, "guild reload: %s has no node %q (it has %s)\n", opts.file, opts.node, strings.Join(cfg.NodeNames(), ", "))
		return exitUsage
	}
	base := opts.admin
	if base == "" {
		var err error
		if base, err = adminURL(cfg, opts.node); err != nil {
			fmt.Fprintf(stderr, "guild reload: %v\n", err)
			return exitUsage
		}
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErr("-admin %q is not an http(s) URL", opts.admin)
	}
	token, err := cfg.AdminToken()
	if err != nil {
		fmt.Fprintf(stderr, "guild reload: admin.token_file: %v\n", err)
		return exitError
	}
	code = exitOK
	for _, name := range targets {
		addr := cfg.Nodes[name].Address().String()
		hasTables := cfg.TablesOf(name).Dir != ""
		rctx, cancel := context.WithTimeout(ctx, opts.timeout)
		reply, err := askReload(rctx, base, addr, token)
		cancel()
		var apiErr *reloadError
		switch {
		case err == nil:
		case errors.As(err, &apiErr) && apiErr.status == http.StatusConflict: // the node has nothing to reload
			if opts.all {
				fmt.Fprintf(stdout, "%s (%s): nothing to reload\n", name, addr)
				continue
			}
			fmt.Fprintf(stdout, "%s (%s): FAILED: nothing to reload: no tables directory (tables.dir) and no hot-fix modules\n", name, addr)
			code = exitError
			continue
		case opts.all && !hasTables && errors.As(err, &apiErr) && apiErr.status == http.StatusNotFound:
			fmt.Fprintf(stdout, "%s (%s): not running, skipped (%v)\n", name, addr, err)
			continue
		default:
			fmt.Fprintf(stdout, "%s (%s): FAILED: %v\n", name, addr, err)
			code = exitError
			continue
		}
		status := "ok"
		if !reply.OK {
			status, code = "FAILED", exitError
		}
		fmt.Fprintf(stdout, "%s (%s): %s\n", name, addr, status)
		printReload(stdout, reply, hasTables)
	}
	return code
}

// printReload prints a node's reload results: a line per table set,
// then a line per item of each reloader (reloader/item), each with its
// version and what happened to it.
func printReload(w io.Writer, reply *admin.TablesReply, hasTables bool) {
	if hasTables && len(reply.Results) == 0 {
		fmt.Fprintf(w, "  (no table sets: its modules opened none)\n")
	}
	for _, r := range reply.Results {
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "  %s  %s  kept: %s\n", r.Set, r.Version, indent(r.Error))
		case r.Changed:
			fmt.Fprintf(w, "  %s  %s  changed, was %s\n", r.Set, r.Version, r.Previous)
		default:
			fmt.Fprintf(w, "  %s  %s  unchanged\n", r.Set, r.Version)
		}
	}
	for _, rl := range reply.Reloaders {
		if rl.Error != "" {
			fmt.Fprintf(w, "  %s  FAILED: %s\n", rl.Name, indent(rl.Error))
		}
		if len(rl.Items) == 0 && rl.Error == "" {
			fmt.Fprintf(w, "  %s  (nothing loaded)\n", rl.Name)
		}
		for _, it := range rl.Items {
			item := rl.Name + "/" + it.Name
			switch {
			case it.Error != "":
				fmt.Fprintf(w, "  %s  %s  kept: %s\n", item, orNone(it.Version), indent(it.Error))
			case it.Changed:
				fmt.Fprintf(w, "  %s  %s  changed, was %s\n", item, orNone(it.Version), orNone(it.Previous))
			default:
				fmt.Fprintf(w, "  %s  %s  unchanged\n", item, orNone(it.Version))
			}
		}
	}
}

// orNone returns v, or "none" for no version (as table.Version does).
func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// indent indents the lines of a multi-line error after the first.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }

// adminURL returns the URL of an admin dashboard from the file: the
// node's own (when node is set and serves one), else the first node's
// that serves one.
func adminURL(cfg *config.Config, node string) (string, error) {
	names := cfg.NodeNames()
	if node != "" && cfg.AdminListen(node) != "" {
		names = []string{node}
	}
	for _, name := range names {
		listen := cfg.AdminListen(name)
		if listen == "" {
			continue
		}
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return "", fmt.Errorf("nodes.%s's admin listen %q is not host:port", name, listen)
		}
		if port == "0" {
			return "", fmt.Errorf("nodes.%s's admin dashboard listens on port 0: give -admin with the URL its ready line printed", name)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		return "http://" + net.JoinHostPort(host, port) + "/", nil
	}
	return "", errors.New("no node of the file serves the admin dashboard (admin.listen): give -admin with a dashboard's URL")
}

// askReload asks the dashboard at base to reload the node at addr.
func askReload(ctx context.Context, base, addr, token string) (*admin.TablesReply, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"api/nodes/"+addr+"/reload", nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusUnprocessableEntity:
		var reply admin.TablesReply
		if err := json.Unmarshal(body, &reply); err != nil {
			return nil, fmt.Errorf("the admin API's answer: %w", err)
		}
		return &reply, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return nil, &reloadError{status: resp.StatusCode, msg: resp.Status + ": " + msg}
}

// reloadError is an answer of the admin API other than a reload's
// results: its HTTP status and its message.
type reloadError struct {
	status int
	msg    string
}

func (e *reloadError) Error() string { return e.msg }
