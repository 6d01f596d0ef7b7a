package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/guildkit/guild/gate/tokenauth"
)

// tokenAbout is the help text of guild token.
const tokenAbout = `Token prints a token for a user: a JSON Web Token signed with HS256 under
the secret, whose "sub" is the user, whose "roles" are -roles (when given)
and whose "exp" is -ttl from now. A
gateway whose cluster file has auth: {jwt_secret: ...} (or jwt_secret_file)
with the same secret accepts it as a handshake token, and over MQTT as the
CONNECT's password (docs/MQTT.md). guild demo's secret is printed in its
banner.

  guild token -secret "$SECRET" -user ann -ttl 1h`

// runToken runs guild token.
// tokenOptions are guild token's flags.
type tokenOptions struct {
	secret, secretFile, user string
	roles                    string // comma-separated
	ttl                      time.Duration
}

// tokenFlags is guild token's flag set, bound to opts.
func tokenFlags(opts *tokenOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("token", "token (-secret S | -secret-file F) -user ID [-roles R1,R2] [-ttl D]", tokenAbout, stderr)
	fs.StringVar(&opts.secret, "secret", "", fmt.Sprintf("the shared secret, at least %d bytes", tokenauth.MinSecret))
	fs.StringVar(&opts.secretFile, "secret-file", "", "a `file` holding the secret (white space around it ignored)")
	fs.StringVar(&opts.user, "user", "", "the user ID the token authenticates")
	fs.StringVar(&opts.roles, "roles", "", "the user's `roles`, comma-separated (the token's \"roles\" claim, for routes with roles)")
	fs.DurationVar(&opts.ttl, "ttl", 24*time.Hour, "how long the token is valid; 0: it never expires")
	return fs
}

func runToken(args []string, stdout, stderr io.Writer) int {
	var opts tokenOptions
	fs := tokenFlags(&opts, stderr)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	secret, secretFile, user, ttl := &opts.secret, &opts.secretFile, &opts.user, &opts.ttl
	switch {
	case *user == "":
		fmt.Fprintln(stderr, "guild token: -user is required")
		return exitUsage
	case (*secret == "") == (*secretFile == ""):
		fmt.Fprintln(stderr, "guild token: give one of -secret and -secret-file")
		return exitUsage
	case *ttl < 0:
		fmt.Fprintln(stderr, "guild token: -ttl is negative")
		return exitUsage
	}
	key := []byte(*secret)
	if *secretFile != "" {
		var err error
		if key, err = tokenauth.ReadSecret(*secretFile); err != nil {
			fmt.Fprintf(stderr, "guild token: -secret-file: %v\n", err)
			return exitUsage
		}
	}
	j, err := tokenauth.NewJWT(key)
	if err != nil {
		fmt.Fprintf(stderr, "guild token: -secret: %v\n", err)
		return exitUsage
	}
	var roles []string
	for r := range strings.SplitSeq(opts.roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	tok, err := j.MintRoles(*user, roles, *ttl)
	if err != nil {
		fmt.Fprintf(stderr, "guild token: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, tok)
	return exitOK
}
