package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guildkit/guild/gate/tokenauth"
)

func TestToken(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	j, err := tokenauth.NewJWT([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"token", "-secret", secret, "-user", "ann"},
		{"token", "-secret-file", file, "-user", "ann", "-ttl", "0"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		uid, err := j.Auth(context.Background(), strings.TrimSpace(out.String()))
		if err != nil || uid != "ann" {
			t.Errorf("%v printed a token that authenticates %q, %v", args, uid, err)
		}
	}
	// A token of another secret is refused.
	var out bytes.Buffer
	if code := run([]string{"token", "-secret", "another-secret-just-as-long", "-user", "ann"}, &out, &out); code != exitOK {
		t.Fatal(out.String())
	}
	if _, err := j.Auth(context.Background(), strings.TrimSpace(out.String())); !errors.Is(err, tokenauth.ErrBadToken) {
		t.Errorf("another secret's token: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "-secret", secret}, "-user is required"},
		{[]string{"token", "-user", "ann"}, "give one of -secret and -secret-file"},
		{[]string{"token", "-user", "ann", "-secret", secret, "-secret-file", file}, "give one of -secret and -secret-file"},
		{[]string{"token", "-user", "ann", "-secret", "dev"}, "fewer than 16"},
		{[]string{"token", "-user", "ann", "-secret-file", filepath.Join(t.TempDir(), "nope")}, "no such file"},
		{[]string{"token", "-user", "ann", "-secret", secret, "-ttl", "-1h"}, "-ttl is negative"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), tc.want) || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 saying %q", tc.args, code, errOut.String(), out.String(), tc.want)
		}
	}
}
