package main

import (
	"fmt"
	"io"
	"time"

	"github.com/guildkit/guild/gate/tokenauth"
)

// tokenAbout is the help text of guild token.
const tokenAbout = `Token prints a token for a user: a JSON Web Token signed with HS256 under
the secret, whose "sub" is the user and whose "exp" is -ttl from now. A
gateway whose cluster file has auth: {jwt_secret: ...} (or jwt_secret_file)
with the same secret accepts it as a handshake token, and over MQTT as the
CONNECT's password (docs/MQTT.md). guild demo's secret is printed in its
banner.

  guild token -secret "$SECRET" -user ann -ttl 1h`

// runToken runs guild token.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", "token (-secret S | -secret-file F) -user ID [-ttl D]", tokenAbout, stderr)
	secret := fs.String("secret", "", fmt.Sprintf("the shared secret, at least %d bytes", tokenauth.MinSecret))
	secretFile := fs.String("secret-file", "", "a `file` holding the secret (white space around it ignored)")
	user := fs.String("user", "", "the user ID the token authenticates")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid; 0: it never expires")
	if ok, code := parse(fs, args); !ok {
		return code
	}
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
	tok, err := j.Mint(*user, *ttl)
	if err != nil {
		fmt.Fprintf(stderr, "guild token: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, tok)
	return exitOK
}
