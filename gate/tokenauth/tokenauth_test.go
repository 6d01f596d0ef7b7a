package tokenauth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestTable(t *testing.T) {
	tab, err := Parse(strings.NewReader("# token user\n\n  good-ann\tann \nbob-tok bob\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 2 {
		t.Errorf("Len %d, want 2", tab.Len())
	}
	ctx := context.Background()
	if uid, err := tab.Auth(ctx, "good-ann"); err != nil || uid != "ann" {
		t.Errorf("good-ann: %q, %v", uid, err)
	}
	if uid, err := tab.Auth(ctx, "bob-tok"); err != nil || uid != "bob" {
		t.Errorf("bob-tok: %q, %v", uid, err)
	}
	for _, tok := range []string{"", "ann", "good-ann ", "good"} {
		if uid, err := tab.Auth(ctx, tok); !errors.Is(err, ErrUnknownToken) {
			t.Errorf("%q: %q, %v, want ErrUnknownToken", tok, uid, err)
		}
	}
}

func TestTableFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"three fields", "a b c\n", "line 1: want \"token user\", got 3 fields"},
		{"one field", "# c\nalone\n", "line 2: want \"token user\", got 1 fields"},
		{"twice", "a u1\na u2\n", "line 2: the token is given twice"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want %q with the path", tc.name, err, tc.want)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := NewTable(map[string]string{"a b": "u"}); err == nil {
		t.Error("NewTable took a token with a space")
	}
	if _, err := NewTable(map[string]string{"a": ""}); err == nil {
		t.Error("NewTable took an empty user")
	}
}

func TestJWT(t *testing.T) {
	ctx := context.Background()
	j, err := NewJWT(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	j.now = func() time.Time { return now }

	good, err := j.Mint("ann", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := j.Auth(ctx, good); err != nil || uid != "ann" {
		t.Errorf("good token: %q, %v", uid, err)
	}
	forever, err := j.Mint("bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(24 * 365 * time.Hour)
	if uid, err := j.Auth(ctx, forever); err != nil || uid != "bob" {
		t.Errorf("token without exp: %q, %v", uid, err)
	}
	if _, err := j.Auth(ctx, good); !errors.Is(err, ErrExpired) {
		t.Errorf("expired token: %v, want ErrExpired", err)
	}

	other, err := NewJWT([]byte("another secret, just as long......"))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Mint("ann", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Auth(ctx, forged); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "signature is invalid") {
		t.Errorf("token of another secret: %v, want ErrBadToken (signature is invalid)", err)
	}
	// A token with its payload changed (another user) keeps its signature.
	parts := strings.Split(forever, ".")
	alice, _ := j.Mint("alice", 0)
	parts[1] = strings.Split(alice, ".")[1]
	if _, err := j.Auth(ctx, strings.Join(parts, ".")); !errors.Is(err, ErrBadToken) {
		t.Errorf("tampered token: %v, want ErrBadToken", err)
	}
	noSub, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Auth(ctx, noSub); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "sub") {
		t.Errorf("token without a user: %v, want ErrBadToken about sub", err)
	}
	// alg "none" and another HMAC are refused, whatever they claim.
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Subject: "ann"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.RegisteredClaims{Subject: "ann"}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{none, hs512, "", "x", "a.b.c", "good"} {
		if uid, err := j.Auth(ctx, tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("%q: %q, %v, want ErrBadToken", tok, uid, err)
		}
	}
	if _, err := j.Mint("", 0); err == nil {
		t.Error("Mint without a user")
	}
}

func TestSecrets(t *testing.T) {
	if _, err := NewJWT([]byte("short")); err == nil || !strings.Contains(err.Error(), "fewer than 16") {
		t.Errorf("short secret: %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	if err := os.WriteFile(p, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSecret(p)
	if err != nil || string(got) != string(secret) {
		t.Errorf("ReadSecret: %q, %v", got, err)
	}
	if err := os.WriteFile(p, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecret(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("short secret file: %v", err)
	}
}

// FuzzJWTAuth feeds Auth tokens as a client would send them: it never
// panics, and accepts only a token that the secret signed.
func FuzzJWTAuth(f *testing.F) {
	j, err := NewJWT(secret)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := j.Mint("ann", time.Hour)
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbm4ifQ.")
	f.Fuzz(func(t *testing.T, tok string) {
		uid, err := j.Auth(context.Background(), tok)
		if err != nil {
			if uid != "" {
				t.Fatalf("a refusal named user %q", uid)
			}
			return
		}
		if uid == "" {
			t.Fatal("accepted a token without a user")
		}
		// An accepted token is the secret's: re-signing its claims gives
		// the same signature.
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q, not three parts", tok)
		}
		sig, err := jwt.SigningMethodHS256.Sign(parts[0]+"."+parts[1], secret)
		if err != nil {
			t.Fatal(err)
		}
		got, err := jwt.NewParser().DecodeSegment(parts[2])
		if err != nil || string(got) != string(sig) {
			t.Fatalf("accepted %q, whose signature is not the secret's", tok)
		}
	})
}

// FuzzParse feeds the token file parser arbitrary text: it never panics,
// and every entry it keeps is a token and a user without spaces.
func FuzzParse(f *testing.F) {
	f.Add("# c\na b\n")
	f.Add("a b c")
	f.Fuzz(func(t *testing.T, s string) {
		tab, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for tok, uid := range tab.users {
			if checkEntry(tok, uid) != nil {
				t.Fatalf("kept %q -> %q", tok, uid)
			}
		}
	})
}

// TestJWTIdentify: MintRoles' roles and expiry come back from Identify;
// a token of another secret or an expired one is refused as by Auth.
func TestJWTIdentify(t *testing.T) {
	j, err := NewJWT([]byte("0123456789abcdef-identify"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := j.MintRoles("gina", []string{"gm", "vip"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := j.Identify(context.Background(), tok)
	if err != nil || c.UserID != "gina" || strings.Join(c.Roles, ",") != "gm,vip" || time.Until(c.Expires) < 59*time.Minute {
		t.Fatalf("Identify = %+v, %v", c, err)
	}
	if uid, err := j.Auth(context.Background(), tok); err != nil || uid != "gina" {
		t.Fatalf("Auth of a token with roles = %q, %v", uid, err)
	}
	plain, _ := j.Mint("pat", 0)
	if c, err := j.Identify(context.Background(), plain); err != nil || c.Roles != nil || !c.Expires.IsZero() {
		t.Fatalf("Identify of a token without roles or expiry = %+v, %v", c, err)
	}
	other, _ := NewJWT([]byte("another-secret-of-16-bytes"))
	forged, _ := other.MintRoles("gina", []string{"admin"}, time.Hour)
	if _, err := j.Identify(context.Background(), forged); !errors.Is(err, ErrBadToken) {
		t.Fatalf("a token of another secret: %v, want ErrBadToken", err)
	}
	j.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := j.Identify(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("an expired token: %v, want ErrExpired", err)
	}
}
