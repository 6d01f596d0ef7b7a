package gatemqtt

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/gate"
)

// FuzzMQTTTopics: the route/topic mapping never panics; what parses as a
// request topic rebuilds to the same topic; a valid filter matches the
// topics it is made of.
func FuzzMQTTTopics(f *testing.F) {
	for _, s := range []string{"req/chat.Send/17", "req//1", "req/a/b/c/9", "req/x/", "res/1", "push/#", "+/+", "#", "a/#/b", "req/chat.Send/18446744073709551616", ""} {
		f.Add(s, "res/1")
	}
	f.Fuzz(func(t *testing.T, topic, filter string) {
		if route, id, ok := parseRequestTopic(topic); ok {
			if got := "req/" + route + "/" + strconv.FormatUint(id, 10); got != topic && !strings.HasPrefix(topic[len("req/"+route+"/"):], "0") && !strings.HasPrefix(topic[len("req/"+route+"/"):], "+") {
				t.Fatalf("parseRequestTopic(%q) = %q, %d: rebuilds as %q", topic, route, id, got)
			}
			if route == "" {
				t.Fatalf("parseRequestTopic(%q) gave an empty route", topic)
			}
		}
		if validTopicFilter(filter) && !strings.ContainsAny(filter, "+#") && !matchTopic(filter, filter) {
			t.Fatalf("the filter %q without wildcards does not match itself", filter)
		}
		_ = matchTopic(filter, topic)
	})
}

// FuzzMQTTStream: whatever bytes an MQTT client sends, the adapter's read
// returns frames or an error, within its deadline, and never panics.
func FuzzMQTTStream(f *testing.F) {
	// A CONNECT (3.1.1, client "c", password "good") then a PINGREQ.
	connect := []byte{0x10, 0x15, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xC2, 0x00, 0x3C, 0x00, 0x01, 'c', 0x00, 0x01, 'u', 0x00, 0x04, 'g', 'o', 'o', 'd'}
	f.Add(append(append([]byte(nil), connect...), 0xC0, 0x00))
	f.Add(append(append([]byte(nil), connect...), 0x30, 0x0A, 0x00, 0x08, 'r', 'e', 'q', '/', 'a', '/', 'b', '/', 'c'))
	f.Add([]byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})
	f.Add([]byte{0xE0, 0x00})
	lim := gate.Limits{MaxFrame: 4096, HandshakeTimeout: time.Second, Heartbeat: 10 * time.Second}
	f.Fuzz(func(t *testing.T, in []byte) {
		server, peer := net.Pipe()
		defer peer.Close()
		c := newMQTTConn(gate.Stream{Conn: server, Remote: "pipe", Network: Network, Limits: lim, Logger: slog.New(slog.DiscardHandler)})
		defer server.Close()
		go func() { _, _ = io.Copy(io.Discard, peer) }() // what the adapter answers
		go func() {
			_, _ = peer.Write(in)
			_ = peer.Close()
		}()
		deadline := time.Now().Add(2 * time.Second)
		for range 1000 {
			if _, err := c.Read(deadline); err != nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("read kept returning frames past its deadline")
			}
		}
	})
}
