package arena

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/guildkit/guild/rpc"
)

// MaxNameLen bounds a player's name, in bytes.
const MaxNameLen = 24

// checkName returns name without its surrounding spaces, or an
// InvalidArgument status that a player can read: a name is 1 to
// MaxNameLen bytes of printable UTF-8, not starting with "@".
func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", rpc.Error(rpc.InvalidArgument, "a name is required")
	case len(name) > MaxNameLen:
		return "", rpc.Errorf(rpc.InvalidArgument, "the name is longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return "", rpc.Error(rpc.InvalidArgument, "the name is not valid UTF-8")
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return "", rpc.Error(rpc.InvalidArgument, "the name has a character that cannot be shown")
	case strings.HasPrefix(name, "@"):
		// "@user" is how a client that chats without playing is shown.
		return "", rpc.Error(rpc.InvalidArgument, "a name may not start with @")
	}
	return name, nil
}

// nameKey is the form of a name that two players may not share online,
// and the key of its arena.player grain: "Ada" and "ada" are one name.
func nameKey(name string) string { return strings.ToLower(name) }

// errNameTaken is the refusal of a name that a player online already has.
func errNameTaken(name string) error {
	return rpc.Errorf(rpc.AlreadyExists, "the name %q is taken by a player online: pick another", name)
}
