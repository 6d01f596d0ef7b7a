package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	yaml3 "sigs.k8s.io/yaml/goyaml.v3"
)

// ErrInvalid matches every error Load returns for a cluster file that
// does not parse or does not validate.
var ErrInvalid = errors.New("config: invalid cluster file")

// Load reads the cluster file at path, applies the overrides among env
// (a list of KEY=value, as os.Environ returns), fills in defaults and
// validates the result. modules are the names of the game's registered
// modules, which the file's module names must be among; nil skips that
// check.
//
// An override is a variable GUILD_<PATH>=value, where PATH is the key path
// of a field in upper case joined with "_": GUILD_NODES_GATE1_LISTEN,
// GUILD_CLUSTER_ETCD_TTL, GUILD_NODES_GATE1_GATEWAY_LIMITS_RATE. In a node
// (or route, or module) name, '-' is written '_' (node world-2:
// GUILD_NODES_WORLD_2_ADDR). A list takes comma-separated values
// (GUILD_CLUSTER_ETCD_ENDPOINTS=http://a:2379,http://b:2379), a duration
// Go's syntax (5s, 250ms). Overrides set fields of the nodes, routes and
// module sections that the file has; they do not add nodes. A GUILD_
// variable that matches no field is an error, so that a typo does not go
// unnoticed; the variables of other guild tools (GUILD_DEMO, GUILD_BENCH_*)
// are left alone. GUILD_ETCD_PASSWORD (EtcdPasswordEnv) is no override:
// it gives the password of cluster.etcd.username (Etcd.Password).
//
// Load returns every problem it finds, joined with errors.Join, each
// naming its field path (nodes.gate1.addr) or variable; all of them match
// ErrInvalid.
func Load(path string, env []string, modules []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, env, modules, path+": ")
}

// Parse is Load for a file's contents.
func Parse(data []byte, env []string, modules []string) (*Config, error) {
	return parse(data, env, modules, "")
}

// parse is Parse, with prefix before each problem.
func parse(data []byte, env []string, modules []string, prefix string) (*Config, error) {
	tree, err := parseTree(data)
	if err != nil {
		return nil, invalid(prefix, err)
	}
	var errs []error
	errs = append(errs, applyEnv(tree, env, modules)...)
	c := new(Config)
	d := decoder{}
	d.value("", tree, reflectValue(c))
	errs = append(errs, d.errs...)
	if pw, ok := etcdPassword(env); ok {
		if pw == "" {
			errs = append(errs, fmt.Errorf("%s: set but empty", EtcdPasswordEnv))
		}
		c.Cluster.Etcd.Password = pw
	}
	if len(errs) == 0 {
		c.fill()
		errs = append(errs, c.validate(modules)...)
	}
	if len(errs) > 0 {
		return nil, invalid(prefix, errs...)
	}
	return c, nil
}

// invalid joins errs, each marked as ErrInvalid and its message after
// prefix (the file's name): one problem per line.
func invalid(prefix string, errs ...error) error {
	for i, err := range errs {
		errs[i] = &fieldError{prefix: prefix, err: err}
	}
	return errors.Join(errs...)
}

// fieldError is one problem with a cluster file.
type fieldError struct {
	prefix string
	err    error
}

func (e *fieldError) Error() string        { return e.prefix + e.err.Error() }
func (e *fieldError) Unwrap() error        { return e.err }
func (e *fieldError) Is(target error) bool { return target == ErrInvalid }

// parseTree parses YAML into the generic tree the decoder and the
// overrides work on: map[string]any, []any, string, json.Number (a number
// as written), bool and nil. The YAML is read as YAML 1.2 does: only true
// and false are booleans (a node named "no" or "on" stays a name). A key
// given twice in one mapping is an error.
func parseTree(data []byte) (map[string]any, error) {
	var doc yaml3.Node
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(doc.Content) == 0 {
		return map[string]any{}, nil
	}
	v, err := generic(doc.Content[0])
	if err != nil {
		return nil, err
	}
	switch t := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return t, nil
	}
	return nil, fmt.Errorf("config: the file is not a mapping of keys (cluster, nodes, modules)")
}

// generic turns a YAML node into the generic tree.
func generic(n *yaml3.Node) (any, error) {
	switch n.Kind {
	case yaml3.AliasNode:
		return generic(n.Alias)
	case yaml3.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := generic(e)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case yaml3.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, e := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				return nil, fmt.Errorf("config: line %d: merge keys (<<) are not supported", k.Line)
			}
			if k.Kind != yaml3.ScalarNode {
				return nil, fmt.Errorf("config: line %d: a key must be a plain value", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("config: line %d: key %q is already set in this mapping", k.Line, k.Value)
			}
			v, err := generic(e)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml3.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, fmt.Errorf("config: line %d: %w", n.Line, err)
			}
			return b, nil
		case "!!int", "!!float":
			return json.Number(n.Value), nil
		}
		return n.Value, nil
	}
	return nil, fmt.Errorf("config: line %d: unexpected YAML", n.Line)
}
