package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/guildkit/guild/app"
)

// statusAbout is the help text of guild status.
const statusAbout = `Status reads the membership of the cluster that a cluster file describes,
from its etcd, without joining it, and prints a table of its nodes:

	NAME    ADDR   TYPE  ENDPOINT         AVAILABLE  UPTIME  VERSION
	gate1   1.1.1  1     127.0.0.1:7101   yes        2m31s   v1.4.2
	world1  1.2.1  2     -                no         down    -

A node of the file that is not in the membership is listed as down.
VERSION is the version of the build that runs the node (guild version, or
what a game's own main gave app.WithVersion), "-" when it published none:
during a rolling upgrade it shows which nodes run the new build. The etcd
endpoints are the file's (cluster.etcd.endpoints, or the master's address),
unless -etcd or GUILD_CLUSTER_ETCD_ENDPOINTS gives others: a master that
listens on port 0 printed its endpoints in its ready line.`

// runStatus is guild status.
func runStatus(args []string, stdout, stderr io.Writer) int {
	return statusCmd(context.Background(), args, os.Environ(), stdout, stderr)
}

// statusOptions are the flags of guild status.
type statusOptions struct {
	file, endpoints string
	timeout         time.Duration
}

// statusFlags defines the flags of guild status into opts.
func statusFlags(opts *statusOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("status", "status -c cluster.yaml [flags]", statusAbout, stderr)
	fs.StringVar(&opts.file, "c", "", "the cluster `file` (required)")
	fs.StringVar(&opts.endpoints, "etcd", "", "comma-separated etcd client `urls`, instead of the file's")
	fs.DurationVar(&opts.timeout, "timeout", 5*time.Second, "how long to wait for etcd")
	return fs
}

// statusCmd runs guild status with the overrides in environ.
func statusCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	var flags statusOptions
	fs := statusFlags(&flags, stderr)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	if flags.file == "" {
		fmt.Fprint(stderr, "guild status: -c is required\n\n")
		fs.Usage()
		return exitUsage
	}
	// The modules are not checked: status reads any game's cluster file.
	cfg, code, ok := loadConfig("status", flags.file, environ, nil, stderr)
	if !ok {
		return code
	}
	var opts []app.Option
	if flags.endpoints != "" {
		var eps []string
		for e := range strings.SplitSeq(flags.endpoints, ",") {
			if e = strings.TrimSpace(e); e != "" {
				eps = append(eps, e)
			}
		}
		opts = append(opts, app.WithEtcdEndpoints(eps...))
	}
	ctx, cancel := context.WithTimeout(ctx, flags.timeout)
	defer cancel()
	members, err := app.Status(ctx, cfg, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "guild status: %v\n", err)
		return exitError
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDR\tTYPE\tENDPOINT\tAVAILABLE\tUPTIME\tVERSION")
	for _, m := range members {
		name, endpoint, available, uptime, ver := m.Name, m.Endpoint, "no", "down", m.Version
		if name == "" {
			name = "-"
		}
		if ver == "" {
			ver = "-"
		}
		if endpoint == "" {
			endpoint = "-"
		}
		if m.Available {
			available = "yes"
		}
		if m.Up {
			uptime = m.Uptime.Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, m.Addr, strconv.Itoa(m.Type), endpoint, available, uptime, ver)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "guild status: %v\n", err)
		return exitError
	}
	return exitOK
}
