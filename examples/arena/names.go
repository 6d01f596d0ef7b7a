package arena

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/guildkit/guild/rpc"
)

// MaxNameLen bounds a player's name, in characters (runes, after NFC
// normalisation).
const MaxNameLen = 16

// checkName returns name as the game shows it, or an InvalidArgument
// status that a player can read. The name is NFC-normalised, trimmed of
// white space around it, and its inner runs of spaces become one space.
// It must then be 1 to MaxNameLen characters, every one printable (a
// letter, mark, number, punctuation, symbol or the ASCII space): no
// control character (so no ANSI escape), no formatting character (so no
// bidi override or isolate, U+202A–U+202E and U+2066–U+2069, no
// zero-width space or joiner), no character that shows as blank (the
// Hangul fillers, the Braille blank), no combining mark first and at most
// two in a row, and not starting with "@" (how a client that chats
// without playing is shown). Two names that look alike are one name
// online: see nameKey.
func checkName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", rpc.Error(rpc.InvalidArgument, "the name is not valid UTF-8")
	}
	if len(name) > 4*MaxNameLen*4 { // bound the work before normalising
		return "", rpc.Errorf(rpc.InvalidArgument, "the name is longer than %d characters", MaxNameLen)
	}
	name = strings.Join(strings.FieldsFunc(norm.NFC.String(name), func(r rune) bool { return r == ' ' }), " ")
	name = strings.TrimFunc(name, unicode.IsSpace)
	if name == "" {
		return "", rpc.Error(rpc.InvalidArgument, "a name is required")
	}
	if n := utf8.RuneCountInString(name); n > MaxNameLen {
		return "", rpc.Errorf(rpc.InvalidArgument, "the name is longer than %d characters", MaxNameLen)
	}
	marks, visible := 0, false
	for i, r := range name {
		switch {
		case unicode.IsControl(r):
			return "", rpc.Errorf(rpc.InvalidArgument, "the name has a control character (%U)", r)
		case unicode.Is(unicode.Cf, r):
			return "", rpc.Errorf(rpc.InvalidArgument, "the name has an invisible formatting character (%U)", r)
		case isBlank(r):
			return "", rpc.Errorf(rpc.InvalidArgument, "the name has a character that shows as blank (%U)", r)
		case !unicode.IsPrint(r):
			return "", rpc.Errorf(rpc.InvalidArgument, "the name has a character that cannot be shown (%U)", r)
		case unicode.Is(unicode.M, r):
			if i == 0 {
				return "", rpc.Error(rpc.InvalidArgument, "the name starts with a combining mark")
			}
			if marks++; marks > 2 {
				return "", rpc.Error(rpc.InvalidArgument, "the name stacks more than two combining marks")
			}
			continue
		case r != ' ':
			visible = true
		}
		marks = 0
	}
	switch {
	case !visible:
		return "", rpc.Error(rpc.InvalidArgument, "a name is required")
	case strings.HasPrefix(name, "@"):
		return "", rpc.Error(rpc.InvalidArgument, "a name may not start with @")
	}
	return name, nil
}

// isBlank reports whether r is a printable character that shows as
// nothing, which a name could hide behind.
func isBlank(r rune) bool {
	switch r {
	case 0x115F, 0x1160, 0x3164, 0xFFA0, // Hangul fillers
		0x2800, // Braille pattern blank
		0x034F: // combining grapheme joiner
		return true
	}
	return false
}

// nameKey is the form of a name that two players may not share online,
// and the key of its arena.player grain. Names that differ only in case
// ("Ada", "ADA"), in compatibility forms (full-width "Ａｄａ", ligatures)
// or by Cyrillic and Greek letters that look Latin ("Аdа" with Cyrillic
// А and а) have one key, so nobody can pass for another player online.
// It is applied to names checkName accepted.
func nameKey(name string) string {
	// A Caser keeps state: one per call (nameKey runs on many actors).
	folded := cases.Fold().String(norm.NFKC.String(name))
	return strings.Map(func(r rune) rune {
		if l, ok := lookalike[r]; ok {
			return l
		}
		return r
	}, folded)
}

// lookalike maps the lower-case Cyrillic and Greek letters that look like
// a Latin letter to it (after case folding), a small part of Unicode's
// confusables (UTS #39) that covers the usual impersonations.
var lookalike = map[rune]rune{
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c',
	'т': 't', 'у': 'y', 'х': 'x', 'і': 'i', 'ї': 'i', 'ј': 'j', 'ѕ': 's', 'һ': 'h', 'ԁ': 'd', 'ӏ': 'l',
	'ԛ': 'q', 'ԝ': 'w', 'ɑ': 'a',
	'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'n', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't',
	'υ': 'u', 'χ': 'x', 'ϲ': 'c', 'ϳ': 'j',
}

// errNameTaken is the refusal of a name that a player online already has.
func errNameTaken(name string) error {
	return rpc.Errorf(rpc.AlreadyExists, "the name %q is taken by a player online: pick another", name)
}

// CleanChat returns a chat line as the game broadcasts it: NFC-normalised,
// with invalid UTF-8 replaced, ANSI escape sequences and every other
// control character removed (a tab or line break becomes a space), bidi
// overrides and isolates removed (U+202A–U+202E, U+2066–U+2069, and the
// marks U+200E, U+200F, U+061C), combining marks beyond two in a row
// removed, and the white space around it trimmed. The caller bounds its
// length (MaxChatLen).
func CleanChat(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var b strings.Builder
	b.Grow(len(text))
	marks := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == 0x1B || r == 0x9B { // ESC or CSI: skip the whole sequence
			i += size + escapeLen(text[i+size:], r == 0x9B)
			continue
		}
		i += size
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case unicode.IsControl(r), isBidiControl(r):
		case unicode.Is(unicode.M, r):
			if marks++; marks <= 2 {
				b.WriteRune(r)
			}
			continue
		default:
			b.WriteRune(r)
		}
		marks = 0
	}
	return strings.TrimSpace(norm.NFC.String(b.String()))
}

// escapeLen returns the length of the rest of an escape sequence whose
// introducer (ESC, or the C1 CSI when csi) has been read: a CSI sequence
// runs to its final byte (0x40–0x7E), an OSC one (ESC ]) to BEL or ESC \,
// any other ESC sequence is one more character.
func escapeLen(s string, csi bool) int {
	if !csi {
		if s == "" {
			return 0
		}
		switch s[0] {
		case '[':
			return 1 + escapeLen(s[1:], true)
		case ']':
			for i := 1; i < len(s); i++ {
				if s[i] == 0x07 {
					return i + 1
				}
				if s[i] == 0x1B && i+1 < len(s) && s[i+1] == '\\' {
					return i + 2
				}
			}
			return len(s)
		}
		_, n := utf8.DecodeRuneInString(s)
		return n
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x40 && s[i] <= 0x7E {
			return i + 1
		}
		if s[i] < 0x20 || s[i] > 0x7E {
			return i // not a CSI parameter: the sequence ends here
		}
	}
	return len(s)
}

// isBidiControl reports whether r changes the direction of the text
// after it: the embeddings, overrides and isolates, and the marks.
func isBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == 0x200E || r == 0x200F || r == 0x061C
}
