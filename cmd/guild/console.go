package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate/tokenauth"
	"github.com/guildkit/guild/rpc"
)

// consoleAbout is the help text of guild console.
const consoleAbout = `Console is an interactive client of a gateway: it connects to -addr, then
reads commands from its standard input, one per line, and prints what the
gateway answers on its standard output. It reads a pipe or a file as well
as a terminal, so it also scripts a gateway.

Commands:

  request <route> [<Type> [<json> [<ReplyType>]]]
      Send a request to route. Its body is a message of the protobuf type
      Type (a full name such as google.protobuf.StringValue), given as JSON
      in protobuf's JSON mapping ({} when left out); with no Type, the body
      is empty. With ReplyType, the reply is decoded as that type and
      printed as JSON; without, it is printed as its length and base64.
  session
      Print the session ID, and the user the handshake authenticated.
  help
      Print this list.
  quit
      Close the connection and exit, as the end of the input does.

Output, one line per event:

  reply <route> <json>              a reply decoded as ReplyType
  reply <route> (<n> bytes) <b64>   a reply not decoded
  error <Code> <message>            the gateway's or the service's error
  push <route> <json>               a push of a route mapped by -push
  push <route> (<n> bytes) <b64>    any other push
  session <id> user <user>          the answer to session ("-" for no user)
  closed <Code> <reason>            the connection ended; console exits 1

Message types: the well-known types (google.protobuf.Empty, StringValue,
Int64Value, Struct...) are always known. Others come from the .proto
files given with -proto, compiled at startup (their imports are found in
the -I directories, and the well-known types can always be imported).

Example:

  guild console -addr tcp://127.0.0.1:7000 -proto chat.proto
  > request chat.Login google.protobuf.StringValue "ana" google.protobuf.StringValue
  reply chat.Login "welcome ana"
  > request chat.Say chat.SayRequest {"text": "hi"} chat.SayReply
  reply chat.Say {"seq":"1"}

Mistakes in a command (an unknown type, JSON that does not match it) are
reported on standard error and the console reads on. Ctrl-C exits.`

// consoleOptions are the flags of guild console.
type consoleOptions struct {
	addr, token string
	protos      stringList // -proto
	importDirs  stringList // -I
	pushTypes   map[string]string
	timeout     time.Duration
	pushes      stringList // -push, as given
	kcpKeyFile  string     // -kcp-key-file
	kcpKey      []byte     // its contents
}

// runConsole runs the console on the process's standard input until it
// ends, quit, or an interrupt.
func runConsole(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return console(ctx, args, os.Stdin, stdout, stderr)
}

// console runs the console with its flags args, reading commands from in.
func console(ctx context.Context, args []string, in io.Reader, stdout, stderr io.Writer) int {
	opts, ok, code := parseConsoleFlags(args, stderr)
	if !ok {
		return code
	}
	types, err := loadTypes(ctx, opts.importDirs, opts.protos, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "guild console: %v\n", err)
		return exitError
	}
	for route, name := range opts.pushTypes {
		if _, err := types.messageType(name); err != nil {
			fmt.Fprintf(stderr, "guild console: -push %s=%s: %v\n", route, name, err)
			return exitUsage
		}
	}

	out := &lockedWriter{w: stdout}
	closed := make(chan error, 1)
	c, err := client.Dial(ctx, client.Config{
		Addr:    opts.addr,
		Token:   opts.token,
		KCPKey:  opts.kcpKey,
		OnClose: func(err error) { closed <- err }, // called at most once: no Reconnect
	})
	if err != nil {
		fmt.Fprintf(stderr, "guild console: %v\n", err)
		return exitError
	}
	defer c.Close()
	c.OnAnyPush(func(route string, body []byte) {
		out.printf("push %s %s\n", route, types.show(opts.pushTypes[route], body))
	})
	if isTerminal(in) {
		fmt.Fprintf(stderr, "connected to %s as session %s; type help for the commands\n", opts.addr, c.SessionID())
	}

	lines, stopReading := readLines(in)
	defer stopReading()
	for {
		if isTerminal(in) {
			fmt.Fprint(stderr, "> ")
		}
		var (
			line string
			more bool
		)
		select {
		case line, more = <-lines:
		case err := <-closed:
			st := rpc.StatusOf(err)
			out.printf("closed %s %s\n", st.Code, st.Message)
			return exitError
		case <-ctx.Done():
			return exitOK
		}
		if !more {
			return exitOK
		}
		cmd, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest = strings.TrimSpace(rest)
		switch cmd {
		case "", "#":
		case "quit", "exit":
			return exitOK
		case "help":
			fmt.Fprintln(stderr, consoleAbout)
		case "session":
			user := c.UserID()
			if user == "" {
				user = "-"
			}
			out.printf("session %s user %s\n", c.SessionID(), user)
		case "request":
			consoleRequest(ctx, c, types, opts.timeout, rest, out, stderr)
		default:
			if strings.HasPrefix(cmd, "#") {
				continue // a comment, for scripts
			}
			fmt.Fprintf(stderr, "guild console: unknown command %q; type help for the commands\n", cmd)
		}
	}
}

// parseConsoleFlags parses the flags of guild console.
func parseConsoleFlags(args []string, stderr io.Writer) (opts consoleOptions, ok bool, code int) {
	fs := consoleFlags(&opts, stderr)
	if ok, code := parse(fs, args); !ok {
		return opts, false, code
	}
	if opts.addr == "" {
		fmt.Fprint(stderr, "guild console: -addr is required\n\n")
		fs.Usage()
		return opts, false, exitUsage
	}
	if opts.timeout <= 0 {
		fmt.Fprint(stderr, "guild console: -timeout must be positive\n")
		return opts, false, exitUsage
	}
	if opts.kcpKeyFile != "" {
		var err error
		if opts.kcpKey, err = tokenauth.ReadSecret(opts.kcpKeyFile); err != nil {
			fmt.Fprintf(stderr, "guild console: -kcp-key-file: %v\n", err)
			return opts, false, exitUsage
		}
	}
	opts.pushTypes = make(map[string]string)
	for _, p := range opts.pushes {
		route, name, found := strings.Cut(p, "=")
		if !found || route == "" || name == "" {
			fmt.Fprintf(stderr, "guild console: -push %q is not route=Type\n", p)
			return opts, false, exitUsage
		}
		opts.pushTypes[route] = name
	}
	return opts, true, exitOK
}

// kcpKeyFileUsage describes the -kcp-key-file flag of console and bot.
const kcpKeyFileUsage = "a `file` holding the secret that encrypts a kcp:// gateway's traffic: the gateway's kcp_key_file (white space around it ignored)"

// consoleFlags defines the flags of guild console into opts.
func consoleFlags(opts *consoleOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("console", "console -addr url [-token t] [-proto file.proto]... [-I dir]... [-push route=Type]...", consoleAbout, stderr)
	fs.StringVar(&opts.addr, "addr", "", "the gateway: tcp://host:port, ws://host:port/path, wss://..., kcp://host:port (required)")
	fs.StringVar(&opts.token, "token", "", "auth token sent in the handshake")
	fs.Var(&opts.protos, "proto", "a .proto `file` whose messages the commands may name; repeatable")
	fs.Var(&opts.importDirs, "I", "import `dir`ectory of the -proto files and their imports; repeatable (default \".\")")
	fs.Var(&opts.pushes, "push", "print the pushes of `route=Type` as JSON of that message type; repeatable")
	fs.DurationVar(&opts.timeout, "timeout", 10*time.Second, "how long a request waits for its reply")
	fs.StringVar(&opts.kcpKeyFile, "kcp-key-file", "", kcpKeyFileUsage)
	return fs
}

// consoleRequest runs the command "request <rest>".
func consoleRequest(ctx context.Context, c *client.Client, types typeResolver, timeout time.Duration, rest string, out *lockedWriter, stderr io.Writer) {
	route, reqType, jsonText, replyType, err := parseRequest(rest)
	if err != nil {
		fmt.Fprintf(stderr, "guild console: %v\n", err)
		return
	}
	if replyType != "" {
		if _, err := types.messageType(replyType); err != nil {
			fmt.Fprintf(stderr, "guild console: %v\n", err)
			return
		}
	}
	var body []byte
	if reqType != "" {
		if body, err = types.encode(reqType, jsonText); err != nil {
			fmt.Fprintf(stderr, "guild console: %v\n", err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := c.RequestRaw(ctx, route, body)
	if err != nil {
		st := rpc.StatusOf(err)
		out.printf("error %s %s\n", st.Code, st.Message)
		return
	}
	out.printf("reply %s %s\n", route, types.show(replyType, reply))
}

// parseRequest splits the arguments of request: a route, then optionally
// a type, a JSON value (which may hold spaces) and a reply type.
func parseRequest(rest string) (route, reqType, jsonText, replyType string, err error) {
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", "", "", "", errors.New("usage: request <route> [<Type> [<json> [<ReplyType>]]]")
	}
	route = fields[0]
	if len(fields) == 1 {
		return route, "", "", "", nil
	}
	reqType = fields[1]
	rest = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(rest, route)), reqType))
	if rest == "" {
		return route, reqType, "{}", "", nil
	}
	dec := json.NewDecoder(strings.NewReader(rest))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return "", "", "", "", fmt.Errorf("request %s: the body is not JSON: %v", route, err)
	}
	jsonText = string(v)
	tail := strings.Fields(rest[dec.InputOffset():])
	switch len(tail) {
	case 0:
	case 1:
		replyType = tail[0]
	default:
		return "", "", "", "", fmt.Errorf("request %s: unexpected %q after the reply type", route, strings.Join(tail[1:], " "))
	}
	return route, reqType, jsonText, replyType, nil
}

// readLines sends the lines of in on the channel it returns, which it
// closes at the end of in. stop makes it give up sending.
func readLines(in io.Reader) (lines <-chan string, stop func()) {
	ch := make(chan string)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 4<<20)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return ch, func() { once.Do(func() { close(done) }) }
}

// lockedWriter serialises whole lines from the command loop and the
// client's push handler.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// isTerminal reports whether v is a character device, such as a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// typeResolver finds message types by their full names: the types linked
// into guild (the well-known types among them), then those of the
// compiled -proto files. Its methods are safe for concurrent use.
type typeResolver struct {
	files *dynamicpb.Types // nil without -proto files
}

// loadTypes compiles the .proto files (none is fine) and returns the
// resolver of their messages and the well-known ones.
func loadTypes(ctx context.Context, importDirs, protoFiles []string, warnings io.Writer) (typeResolver, error) {
	if len(protoFiles) == 0 {
		return typeResolver{}, nil
	}
	if len(importDirs) == 0 {
		importDirs = []string{"."}
	}
	names := make([]string, 0, len(protoFiles))
	for _, f := range protoFiles {
		name, err := protoName(importDirs, f)
		if err != nil {
			return typeResolver{}, err
		}
		names = append(names, name)
	}
	compiled, err := compileProtos(ctx, importDirs, names, warnings)
	if err != nil {
		return typeResolver{}, err
	}
	files := new(protoregistry.Files)
	var register func(fd protoreflect.FileDescriptor) error
	register = func(fd protoreflect.FileDescriptor) error {
		if _, err := files.FindFileByPath(fd.Path()); err == nil {
			return nil
		}
		imports := fd.Imports()
		for i := range imports.Len() {
			if err := register(imports.Get(i).FileDescriptor); err != nil {
				return err
			}
		}
		return files.RegisterFile(fd)
	}
	for _, fd := range compiled {
		if err := register(fd); err != nil {
			return typeResolver{}, err
		}
	}
	return typeResolver{files: dynamicpb.NewTypes(files)}, nil
}

// messageType returns the type of the message named name.
func (r typeResolver) messageType(name string) (protoreflect.MessageType, error) {
	mt, err := r.FindMessageByName(protoreflect.FullName(strings.TrimPrefix(name, ".")))
	if err != nil {
		if errors.Is(err, protoregistry.NotFound) {
			return nil, fmt.Errorf("unknown message type %q: not a well-known type, nor in a -proto file", name)
		}
		return nil, err
	}
	return mt, nil
}

// encode returns the message of type name that jsonText holds, encoded.
func (r typeResolver) encode(name, jsonText string) ([]byte, error) {
	mt, err := r.messageType(name)
	if err != nil {
		return nil, err
	}
	m := mt.New().Interface()
	if err := (protojson.UnmarshalOptions{Resolver: r}).Unmarshal([]byte(jsonText), m); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return proto.Marshal(m)
}

// show returns body as compact JSON of the message type name, or as its
// length and base64 when name is "" or body does not decode.
func (r typeResolver) show(name string, body []byte) string {
	raw := fmt.Sprintf("(%d bytes) %s", len(body), base64.StdEncoding.EncodeToString(body))
	if name == "" {
		return strings.TrimSpace(raw)
	}
	mt, err := r.messageType(name)
	if err != nil {
		return raw
	}
	m := mt.New().Interface()
	if err := (proto.UnmarshalOptions{Resolver: r}).Unmarshal(body, m); err != nil {
		return fmt.Sprintf("%s (not a %s: %v)", strings.TrimSpace(raw), name, err)
	}
	js, err := protojson.MarshalOptions{Resolver: r}.Marshal(m)
	if err != nil {
		return fmt.Sprintf("%s (not a %s: %v)", strings.TrimSpace(raw), name, err)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, js) != nil { // protojson varies its spacing on purpose
		return string(js)
	}
	return buf.String()
}

// FindMessageByName implements protoregistry.MessageTypeResolver.
func (r typeResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil && r.files != nil {
		return r.files.FindMessageByName(name)
	}
	return mt, err
}

// FindMessageByURL implements protoregistry.MessageTypeResolver, for Any.
func (r typeResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if err != nil && r.files != nil {
		return r.files.FindMessageByURL(url)
	}
	return mt, err
}

// FindExtensionByName implements protoregistry.ExtensionTypeResolver.
func (r typeResolver) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	xt, err := protoregistry.GlobalTypes.FindExtensionByName(field)
	if err != nil && r.files != nil {
		return r.files.FindExtensionByName(field)
	}
	return xt, err
}

// FindExtensionByNumber implements protoregistry.ExtensionTypeResolver.
func (r typeResolver) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	xt, err := protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
	if err != nil && r.files != nil {
		return r.files.FindExtensionByNumber(message, field)
	}
	return xt, err
}
