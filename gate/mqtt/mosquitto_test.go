package gatemqtt_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/gate"
)

// TestMosquittoClients drives the MQTT listener with the mosquitto_sub and
// mosquitto_pub command-line clients (Debian package mosquitto-clients).
// The subscriber is user u1 (token "good"), the publisher user pub (token
// "good-pub"): a user has one session at a time, so two sessions of one
// user would kick each other. chat.Push pushes its body to u1.
func TestMosquittoClients(t *testing.T) {
	pub, errPub := exec.LookPath("mosquitto_pub")
	sub, errSub := exec.LookPath("mosquitto_sub")
	if err := errors.Join(errPub, errSub); err != nil {
		msg := "mosquitto_pub or mosquitto_sub is not on PATH: install mosquitto-clients (apt-get install -y mosquitto-clients) to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	env := startMQTTGateway(t, gate.Limits{})
	host, port, err := net.SplitHostPort(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out, subErr bytes.Buffer
	subCmd := exec.CommandContext(ctx, sub, "-V", "mqttv311", "-h", host, "-p", port, "-u", "x", "-P", "good",
		"-i", "guild-sub", "-t", "push/#", "-q", "1", "-C", "1", "-v")
	subCmd.Stdout, subCmd.Stderr = &out, &subErr
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- subCmd.Wait() }()

	// The subscriber's SUBSCRIBE may not have arrived yet: publish until it
	// has its message (a push before it is dropped: no subscription).
	body := mqttStr(t, "hi") // a wrapperspb.StringValue, what chat.Push takes
	for attempt := 1; ; attempt++ {
		pubCmd := exec.CommandContext(ctx, pub, "-V", "mqttv311", "-h", host, "-p", port, "-u", "x", "-P", "good-pub",
			"-i", "guild-pub", "-t", "req/chat.Push/1", "-q", "1", "-s")
		pubCmd.Stdin = bytes.NewReader(body)
		if b, err := pubCmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v: %s", err, b)
		}
		select {
		case err := <-subDone:
			if err != nil {
				t.Fatalf("mosquitto_sub: %v: %s", err, subErr.String())
			}
			topic, payload, _ := strings.Cut(out.String(), " ")
			if topic != "push/chat.Pushed" || !strings.Contains(payload, "hi") {
				t.Fatalf("mosquitto_sub printed %q, want the push on push/chat.Pushed", out.String())
			}
			if cl := env.waitClosed(t, "u1"); cl.reason != nil || cl.info.Listener != "mqtt" {
				t.Errorf("OnClose of the subscriber: %v on %q, want a goodbye on mqtt", cl.reason, cl.info.Listener)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("mosquitto_sub got nothing after %d publishes: %s", attempt, subErr.String())
		}
	}
}
