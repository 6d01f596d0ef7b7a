package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/internal/await"
)

// TestDemoMQTT runs guild demo and talks MQTT to it as its banner and
// docs/MQTT.md say: Go clients always (checkDemoMQTT), then the
// docs' mosquitto commands as written, when mosquitto-clients is
// installed.
func TestDemoMQTT(t *testing.T) {
	b, _ := startDemo(t, "-addr", "127.0.0.1:0", "-tcp", "-", "-mqtt", "127.0.0.1:0", "-data", t.TempDir())
	checkDemoMQTT(t, b)
	t.Run("mosquitto", func(t *testing.T) { runMQTTDocCommands(t, b) })
}

// demoToken runs the banner's token command in-process and returns the
// token it prints.
func demoToken(t *testing.T, b demoBanner) string {
	t.Helper()
	if len(b.token) == 0 || b.token[0] != "token" {
		t.Fatalf("the banner has no token command: %q", b.token)
	}
	code, out, errOut := runCmd(b.token...)
	if code != exitOK {
		t.Fatalf("%q: exit %d: %s", b.token, code, errOut)
	}
	return strings.TrimSpace(out)
}

// watchChat joins the arena over the demo's WebSocket as name: a player
// that sees the chat.
func watchChat(t *testing.T, ctx context.Context, b demoBanner, name string) *arenaPlayer {
	t.Helper()
	return joinArena(t, ctx, "ws://"+b.page+arena.WebSocketPath, name)
}

// heard reports whether p got the chat line text from from.
func (p *arenaPlayer) heard(from, text string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.chat, func(l *arenapb.ChatLine) bool { return l.GetFrom() == from && l.GetText() == text })
}

// checkDemoMQTT talks to the demo of banner b with Go MQTT clients, over
// both of its MQTT listeners: a token from the banner's command logs in
// as ann, who chats without joining (a player hears "@ann"); a bad token
// is refused; an anonymous client joins as MQTT.js does in docs/MQTT.md.
func checkDemoMQTT(t *testing.T, b demoBanner) {
	t.Helper()
	if b.mqtt == "" || !strings.HasPrefix(b.mqttWS, "ws://") || !strings.HasSuffix(b.mqttWS, arena.MQTTWebSocketPath) {
		t.Fatalf("the banner's MQTT addresses: %q and %q", b.mqtt, b.mqttWS)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*demoTimeout)
	defer cancel()
	watcher := watchChat(t, ctx, b, "watcher")
	token := demoToken(t, b)

	t.Run("MQTT 5 over TCP with a token", func(t *testing.T) {
		got := make(chan *paho.Publish, 16)
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.mqtt)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil },
		}})
		if ca, err := c.Connect(ctx, &paho.Connect{ClientID: "ann-go", CleanStart: true, KeepAlive: 30,
			Username: "ann", UsernameFlag: true, Password: []byte(token), PasswordFlag: true}); err != nil {
			t.Fatalf("CONNECT with the banner's token: %+v, %v", ca, err)
		}
		defer c.Disconnect(&paho.Disconnect{})
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "res/#", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		body, _ := proto.Marshal(&arenapb.SayRequest{Text: "hello from Go"})
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "req/chat.Say/1", QoS: 1, Payload: body}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if p.Topic != "res/1" || (p.Properties != nil && len(p.Properties.User) > 0) {
				t.Fatalf("chat.Say answered on %q with %+v", p.Topic, p.Properties)
			}
		case <-ctx.Done():
			t.Fatal("no answer to chat.Say")
		}
		await.True(t, demoTimeout, "the player to hear @ann", func() bool { return watcher.heard("@ann", "hello from Go") })

		bad, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.mqtt)
		if err != nil {
			t.Fatal(err)
		}
		ca, err := paho.NewClient(paho.ClientConfig{Conn: bad}).Connect(ctx, &paho.Connect{ClientID: "forger", CleanStart: true,
			Username: "ann", UsernameFlag: true, Password: []byte(token + "x"), PasswordFlag: true})
		if err == nil || ca == nil || ca.ReasonCode != 0x87 {
			t.Errorf("CONNECT with a bad token: %+v, %v; want CONNACK 0x87 (not authorized)", ca, err)
		}
	})

	t.Run("MQTT 3.1.1 over WebSocket without a token, as MQTT.js", func(t *testing.T) {
		var (
			mu     sync.Mutex
			topics []string
			reply  arenapb.JoinReply
		)
		opts := mqtt.NewClientOptions().AddBroker(b.mqttWS).SetClientID("carol-go").SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetCleanSession(true).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
				mu.Lock()
				defer mu.Unlock()
				topics = append(topics, m.Topic())
				if m.Topic() == "res/1" {
					_ = proto.Unmarshal(m.Payload(), &reply)
				}
			})
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(demoTimeout) || tok.Error() != nil {
			t.Fatalf("connect to %s: %v", b.mqttWS, tok.Error())
		}
		defer c.Disconnect(0)
		if tok := c.SubscribeMultiple(map[string]byte{"res/#": 0, "err/#": 0, "push/#": 0}, nil); !tok.WaitTimeout(demoTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		// docs/MQTT.md's MQTT.js example encodes JoinRequest{name} by hand.
		name := "carol"
		body := append([]byte{0x0a, byte(len(name))}, name...)
		if tok := c.Publish("req/arena.Join/1", 0, false, body); !tok.WaitTimeout(demoTimeout) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		await.True(t, demoTimeout, "carol's JoinReply on res/1 and an arena.World push", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(topics, "res/1") && slices.Contains(topics, "push/"+arena.PushWorld)
		})
		mu.Lock()
		defer mu.Unlock()
		if reply.GetPlayerId() == "" || slices.Contains(topics, "err/1") {
			t.Errorf("join over MQTT: reply %v, topics %q", &reply, topics)
		}

		bad := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.mqttWS).SetClientID("forger").SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectRetry(false).SetUsername("ann").SetPassword("wrong"))
		tok := bad.Connect()
		if !tok.WaitTimeout(demoTimeout) {
			t.Fatal("no CONNACK for a bad token")
		}
		if rc := tok.(*mqtt.ConnectToken).ReturnCode(); tok.Error() == nil || rc != 5 {
			t.Errorf("a bad token over WebSocket: return code %d, %v; want 5 (not authorized)", rc, tok.Error())
		}
	})
}

// runMQTTDocCommands runs the mosquitto commands of docs/MQTT.md's demo
// section and of the README's Quickstart as written, with the MQTT port
// the test's demo got for 1884; their go run ./cmd/guild token commands
// run in this process. It skips when mosquitto-clients is not installed
// (fails with CI=true).
func runMQTTDocCommands(t *testing.T, b demoBanner) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub", "mosquitto_rr"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not on PATH: install mosquitto-clients (apt-get install -y mosquitto-clients) to run docs/MQTT.md's commands"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	const marker = "<!-- commands run by cmd/guild TestDemoMQTT -->"
	_, port, _ := strings.Cut(b.mqtt, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 2*demoTimeout)
	defer cancel()
	watcher := watchChat(t, ctx, b, "listener")
	for _, doc := range []struct {
		path string
		n    int // mosquitto commands
	}{{"../../docs/MQTT.md", 3}, {"../../README.md", 1}} {
		t.Run(doc.path[len("../../"):], func(t *testing.T) {
			if ran := runDocCommands(t, ctx, docCommands(t, doc.path, marker), port, watcher); ran != doc.n {
				t.Errorf("ran %d mosquitto commands of %s, want %d", ran, doc.path, doc.n)
			}
		})
	}
}

// runDocCommands runs the commands cmds of a document against the demo's
// MQTT port, checking each one's effect (watcher is a player in the
// arena), and returns how many mosquitto commands it ran.
func runDocCommands(t *testing.T, ctx context.Context, cmds []string, port string, watcher *arenaPlayer) int {
	t.Helper()
	env := os.Environ()
	ran := 0
	for _, line := range cmds {
		if rest, ok := strings.CutPrefix(line, "TOKEN=$(go run ./cmd/guild "); ok {
			args := strings.Fields(strings.TrimSuffix(rest, ")"))
			code, out, errOut := runCmd(args...)
			if code != exitOK {
				t.Fatalf("%s: exit %d: %s", line, code, errOut)
			}
			env = append(env, "TOKEN="+strings.TrimSpace(out))
			continue
		}
		if !strings.Contains(line, "-p 1884") {
			t.Fatalf("%q does not say -p 1884", line)
		}
		cmd := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(line, "-p 1884", "-p "+port))
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		ran++
		switch {
		case strings.Contains(line, "mosquitto_pub") && strings.Contains(line, "chat.Say"):
			if err != nil {
				t.Errorf("%s: %v: %s", line, err, out.String())
			}
			await.True(t, demoTimeout, "a player to hear @ann's hello from MQTT", func() bool { return watcher.heard("@ann", "hello from MQTT") })
			watcher.mu.Lock()
			watcher.chat = nil // the next document's hello is its own
			watcher.mu.Unlock()
		case strings.Contains(line, "mosquitto_sub") && strings.Contains(line, "-P wrong"):
			var exit *exec.ExitError
			if !errors.As(err, &exit) || !strings.Contains(out.String(), "not authorised") {
				t.Errorf("%s: %v, printed %q; want a refusal, not authorised", line, err, out.String())
			}
		case strings.Contains(line, "mosquitto_rr") && strings.Contains(line, "arena.Join"):
			if err != nil || !strings.Contains(out.String(), `\n 016   p   -`) {
				t.Errorf("%s: %v, printed %q; want bob's JoinReply, his player ID first", line, err, out.String())
			}
		default:
			t.Errorf("no check for %q", line)
		}
	}
	return ran
}

// docCommands returns the commands of the first sh block after marker in
// the Markdown file path: its lines that are neither blank nor comments.
func docCommands(t *testing.T, path, marker string) []string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("%s has no %q", path, marker)
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatalf("%s: no sh block after %q", path, marker)
	}
	var cmds []string
	for l := range strings.SplitSeq(block, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

// TestDemoMQTTPortInUse: with its MQTT port taken (a local broker's, say),
// guild demo says so and names the flag that moves it, on one node and on
// three, before it starts a process.
func TestDemoMQTTPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	for _, nodes := range []string{"1", "3"} {
		code, _, errOut := runCmd("demo", "-nodes", nodes, "-addr", "127.0.0.1:0", "-tcp", "-", "-mqtt", busy, "-data", t.TempDir())
		if code != exitError || !strings.Contains(errOut, "cannot listen for MQTT on "+busy) || !strings.Contains(errOut, "-mqtt changes it") {
			t.Errorf("-nodes %s, -mqtt %s in use: exit %d, stderr:\n%s", nodes, busy, code, errOut)
		}
	}
}
