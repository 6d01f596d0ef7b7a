// Package tokenauth checks the tokens that clients present to a gateway,
// without game code: it provides two hooks of the type of gate.Config.Auth
// that a cluster file can choose (nodes.<name>.gateway.auth, see
// docs/CONFIG.md), and that Go code can use as they are.
//
//   - Table: a static table of tokens, each naming a user, read from a
//     file (ReadFile). For development, tests and small private servers.
//   - JWT: signed tokens, JSON Web Tokens signed with HMAC-SHA256 (HS256)
//     under a secret shared with whatever mints them (NewJWT; Mint, or
//     guild token, or any JWT library). The token's "sub" claim is the
//     user ID; "exp", when present, is when it stops being accepted;
//     "roles", when present, a list of the user's roles (JWT.Identify).
//
// Over MQTT the token is the CONNECT's password (or its username when the
// password is empty): docs/MQTT.md.
//
// Both are safe for concurrent use: a gateway calls Auth from the goroutine
// of each connection's handshake.
package tokenauth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors of Auth. Each refusal matches one of them with errors.Is.
var (
	// ErrUnknownToken: the token is not in the Table.
	ErrUnknownToken = errors.New("tokenauth: unknown token")
	// ErrBadToken: the token is not a JWT signed with the secret, or it
	// names no user.
	ErrBadToken = errors.New("tokenauth: bad token")
	// ErrExpired: the JWT's "exp" has passed.
	ErrExpired = errors.New("tokenauth: token expired")
)

// Table authenticates the tokens of a fixed table, each of which names a
// user.
type Table struct {
	users map[string]string // user ID by token
}

// NewTable returns a Table of users by token. A token or a user ID may not
// be empty, nor hold spaces (so that it can be written in a file).
func NewTable(users map[string]string) (*Table, error) {
	t := &Table{users: make(map[string]string, len(users))}
	for tok, uid := range users {
		if err := checkEntry(tok, uid); err != nil {
			return nil, err
		}
		t.users[tok] = uid
	}
	return t, nil
}

func checkEntry(tok, uid string) error {
	switch {
	case tok == "" || uid == "":
		return errors.New("tokenauth: an empty token or user ID")
	case strings.ContainsFunc(tok+uid, isSpace):
		// The token is not repeated: errors end up in logs.
		return fmt.Errorf("tokenauth: user ID %q, or its token, holds a space", uid)
	}
	return nil
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

// ReadFile reads a token file: one "token user" pair a line, separated by
// spaces or tabs. Blank lines, and lines whose first non-blank character is
// '#', are skipped. A token given twice is an error. The file is read
// once: a change takes effect when the gateway is made again (guild run:
// at the node's restart).
//
//	# token      user
//	s3cret-ann   ann
//	s3cret-bob   bob
func ReadFile(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenauth: %w", err)
	}
	t, err := Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse reads a token file's contents (see ReadFile).
func Parse(r io.Reader) (*Table, error) {
	t := &Table{users: make(map[string]string)}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"token user\", got %d fields", line, len(f))
		}
		if _, dup := t.users[f[0]]; dup {
			return nil, fmt.Errorf("line %d: the token is given twice", line)
		}
		t.users[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// Len returns the number of tokens.
func (t *Table) Len() int { return len(t.users) }

// Auth returns the user of token, or ErrUnknownToken. Its type is
// gate.Config.Auth's.
func (t *Table) Auth(_ context.Context, token string) (string, error) {
	if uid, ok := t.users[token]; ok {
		return uid, nil
	}
	return "", ErrUnknownToken
}

// MinSecret is the shortest JWT secret NewJWT takes, in bytes. HS256 wants
// 32 random bytes (openssl rand -hex 32 prints 64 characters).
const MinSecret = 16

// JWT authenticates JSON Web Tokens signed with HS256 under a secret.
type JWT struct {
	secret []byte
	now    func() time.Time
}

// NewJWT returns a JWT checker for secret, at least MinSecret bytes.
func NewJWT(secret []byte) (*JWT, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("tokenauth: the secret has %d bytes, fewer than %d", len(secret), MinSecret)
	}
	return &JWT{secret: bytes.Clone(secret), now: time.Now}, nil
}

// ReadSecret reads a secret from a file, without the white space around
// it (the newline at its end), and checks its length.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenauth: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < MinSecret {
		return nil, fmt.Errorf("tokenauth: %s: the secret has %d bytes, fewer than %d", path, len(b), MinSecret)
	}
	return b, nil
}

// Mint returns a token for user, signed with the secret, that expires
// after ttl (0: never). This is what guild token prints.
func (j *JWT) Mint(user string, ttl time.Duration) (string, error) {
	if user == "" {
		return "", errors.New("tokenauth: no user")
	}
	claims := jwt.RegisteredClaims{Subject: user, IssuedAt: jwt.NewNumericDate(j.now())}
	if ttl > 0 {
		claims.ExpiresAt = jwt.NewNumericDate(j.now().Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(j.secret)
}

// Auth checks token's signature (HS256 only) and expiry and returns its
// "sub": the user. A refusal matches ErrBadToken or ErrExpired. Its type
// is gate.Config.Auth's.
func (j *JWT) Auth(_ context.Context, token string) (string, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return j.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(j.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", ErrExpired
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrBadToken, shortJWTError(err))
	case claims.Subject == "":
		return "", fmt.Errorf("%w: no \"sub\" claim (the user)", ErrBadToken)
	}
	return claims.Subject, nil
}

// Claims are what a JWT says of its session: Identify's answer, the
// fields of a gate.Identity.
type Claims struct {
	UserID  string    // "sub"
	Roles   []string  // "roles"
	Expires time.Time // "exp"; zero when absent
}

// roleClaims are the claims Identify reads.
type roleClaims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// Identify is Auth that returns the token's roles and expiry too: the
// session is closed when the token expires (see gate.Identity). Its
// refusals are Auth's.
func (j *JWT) Identify(_ context.Context, token string) (Claims, error) {
	var claims roleClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return j.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(j.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrExpired
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %v", ErrBadToken, shortJWTError(err))
	case claims.Subject == "":
		return Claims{}, fmt.Errorf("%w: no \"sub\" claim (the user)", ErrBadToken)
	}
	c := Claims{UserID: claims.Subject, Roles: claims.Roles}
	if claims.ExpiresAt != nil {
		c.Expires = claims.ExpiresAt.Time
	}
	return c, nil
}

// MintRoles is Mint with roles: the token's "roles" claim.
func (j *JWT) MintRoles(user string, roles []string, ttl time.Duration) (string, error) {
	if user == "" {
		return "", errors.New("tokenauth: no user")
	}
	claims := roleClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: user, IssuedAt: jwt.NewNumericDate(j.now())}, Roles: roles}
	if ttl > 0 {
		claims.ExpiresAt = jwt.NewNumericDate(j.now().Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(j.secret)
}

// shortJWTError keeps the first of a jwt error's messages ("token is
// malformed", "signature is invalid"): what a client is told.
func shortJWTError(err error) string {
	for _, e := range []error{jwt.ErrTokenMalformed, jwt.ErrTokenSignatureInvalid, jwt.ErrTokenUnverifiable, jwt.ErrTokenNotValidYet, jwt.ErrTokenInvalidClaims} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "invalid token"
}
