package arena

import (
	"context"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/rpc"
)

// TestNameKeyLookalikes: names that differ only in case, width or
// letters that look Latin share a key, so one cannot pass for the other
// online; different names do not.
func TestNameKeyLookalikes(t *testing.T) {
	for _, same := range [][2]string{
		{"Ada", "ADA"},
		{"Ada", "Ａｄａ"},
		{"Ada", "Аdа"}, // Cyrillic А and а
		{"Bob", "Вob"},
		{"Cleo", "Сlеο"}, // Cyrillic С, е and Greek ο
		{"Straße", "STRASSE"},
	} {
		a, err1 := checkName(same[0])
		b, err2 := checkName(same[1])
		if err1 != nil || err2 != nil {
			t.Fatalf("checkName(%q, %q): %v, %v", same[0], same[1], err1, err2)
		}
		if nameKey(a) != nameKey(b) {
			t.Errorf("nameKey(%q) = %q, nameKey(%q) = %q: want one key", a, nameKey(a), b, nameKey(b))
		}
	}
	if nameKey("Ada") == nameKey("Adam") || nameKey("Zoë") == nameKey("Zoe") {
		t.Error("different names share a key")
	}
}

// TestCleanChat: control characters, ANSI escapes and bidi controls are
// removed from chat, line breaks become spaces, the rest is kept.
func TestCleanChat(t *testing.T) {
	for in, want := range map[string]string{
		"hello":                     "hello",
		"  gg  ":                    "gg",
		"\x1b[31mred\x1b[0m":        "red",
		"\x1b]0;title\x07hi":        "hi",
		"a\x1b":                     "a",
		"a\u009b2Jb":                "ab",
		"bell\x07":                  "bell",
		"two\nlines":                "two lines",
		"x\u202Eevil\u202C":         "xevil",
		"\u2066iso\u2069":           "iso",
		"bad \xff utf8":             "bad \uFFFD utf8",
		"Zoë 🙂":                     "Zoë 🙂",
		"e\u0301":                   "\u00e9",
		"x\u0301\u0302\u0303\u0304": "x\u0301\u0302",
		"\x00\x01\x02":              "",
		"\u200E\u200F\u061C":        "",
	} {
		if got := CleanChat(in); got != want {
			t.Errorf("CleanChat(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCheckName: whatever a client sends as a name, checkName returns an
// InvalidArgument refusal or a name that is NFC, 1..MaxNameLen printable
// characters with no control, formatting, bidi or blank character and
// something visible, which checkName accepts again unchanged; and nameKey
// of an accepted name is valid and not empty.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"ada", " Zoë 🙂 ", "\x1b[31mx", "a\u202Eb", "\u200B", "\u3164", "Ａｄａ", "E\u0301", "@ann", "\xff", strings.Repeat("x", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, err := checkName(in)
		if err != nil {
			if rpc.CodeOf(err) != rpc.InvalidArgument {
				t.Fatalf("checkName(%q): %v, want InvalidArgument", in, err)
			}
			return
		}
		if n := utf8.RuneCountInString(name); n < 1 || n > MaxNameLen || !norm.NFC.IsNormalString(name) {
			t.Fatalf("checkName(%q) = %q: %d runes, or not NFC", in, name, n)
		}
		visible := false
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || isBidiControl(r) || isBlank(r) || !unicode.IsPrint(r) {
				t.Fatalf("checkName(%q) = %q keeps %U", in, name, r)
			}
			if r != ' ' && !unicode.Is(unicode.M, r) {
				visible = true
			}
		}
		if !visible || strings.HasPrefix(name, "@") || strings.TrimSpace(name) != name {
			t.Fatalf("checkName(%q) = %q", in, name)
		}
		if again, err := checkName(name); err != nil || again != name {
			t.Fatalf("checkName(%q) = %q, but checkName(%q) = %q, %v", in, name, name, again, err)
		}
		if k := nameKey(name); k == "" || !utf8.ValidString(k) {
			t.Fatalf("nameKey(%q) = %q", name, k)
		}
	})
}

// FuzzCleanChat: CleanChat never panics and keeps no control character
// or bidi control, and cleaning twice changes nothing.
func FuzzCleanChat(f *testing.F) {
	for _, s := range []string{"hi", "\x1b[1;31mx", "\x1b]0;t\x07", "\u202Ex", "a\xffb", "\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := CleanChat(in)
		for _, r := range out {
			if unicode.IsControl(r) || isBidiControl(r) {
				t.Fatalf("CleanChat(%q) = %q keeps %U", in, out, r)
			}
		}
		if !utf8.ValidString(out) {
			t.Fatalf("CleanChat(%q) = %q: not UTF-8", in, out)
		}
	})
}

// TestValidate: the arena's gateway check refuses what the world would,
// before it leaves the gateway, and lets the rest through.
func TestValidate(t *testing.T) {
	join := func(name string) []byte {
		b, _ := proto.Marshal(&arenapb.JoinRequest{Name: name})
		return b
	}
	say := func(text string) []byte {
		b, _ := proto.Marshal(&arenapb.SayRequest{Text: text})
		return b
	}
	ctx := context.Background()
	for _, c := range []struct {
		route string
		body  []byte
		ok    bool
	}{
		{RouteJoin, join("Ada"), true},
		{RouteJoin, join("evil\u202Egnp"), false},
		{RouteJoin, []byte{0xff}, false},
		{RouteSay, say("\x1b[31mhi"), true}, // cleaned by the chat service
		{RouteSay, say(strings.Repeat("x", 4*MaxChatLen+1)), false},
		{RouteMove, []byte{0xff}, true}, // not the check's to refuse
	} {
		err := Validate(ctx, nil, c.route, c.body)
		if (err == nil) != c.ok || (err != nil && rpc.CodeOf(err) != rpc.InvalidArgument) {
			t.Errorf("Validate(%s, %q) = %v, want ok=%v", c.route, c.body, err, c.ok)
		}
	}
}
