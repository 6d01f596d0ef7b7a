package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml3 "sigs.k8s.io/yaml/goyaml.v3"
)

// EnvPrefix starts every override variable.
const EnvPrefix = "GUILD_"

// EtcdPasswordEnv is the variable that gives the password of
// cluster.etcd.username, as cluster.etcd.password_file does: a secret
// kept out of the file. It is not an override: the password is no key of
// the file.
const EtcdPasswordEnv = "GUILD_ETCD_PASSWORD"

// otherTools are the GUILD_ variables (or, ending in "_", prefixes) of
// other guild tools and of guild's own tests, which Load leaves alone: a
// node started by a test run or a script that sets them must not refuse
// its cluster file.
var otherTools = []string{
	"GUILD_DEMO", "GUILD_BENCH_", "GUILD_BIN", "GUILD_TEST_", "GUILD_CHAOS", "GUILD_CHAOS_",
	"GUILD_SEED", "GUILD_FLAKY", "GUILD_HOSTILE", "GUILD_HOSTILE_", "GUILD_PROC_", "GUILD_GRAIN_",
}

// EnvName returns the part of an override variable's name that stands for
// key: key in upper case with '-' written '_'.
func EnvName(key string) string {
	return strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// applyEnv applies the overrides among env to the tree, in env's order.
func applyEnv(tree map[string]any, env []string, modules []string) []error {
	var errs []error
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || isOtherTool(name) || name == EtcdPasswordEnv {
			continue
		}
		if name == EnvPrefix+"CLUSTER_ETCD_PASSWORD" {
			errs = append(errs, fmt.Errorf("%s: the etcd password is no key of the cluster file: set %s, or cluster.etcd.password_file", name, EtcdPasswordEnv))
			continue
		}
		keys, leaf, ok := resolveEnv(strings.TrimPrefix(name, EnvPrefix), reflect.TypeFor[Config](), tree, modules)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: matches no field of the cluster file (see docs/CONFIG.md)", name))
			continue
		}
		v, err := envValue(leaf, val)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", name, strings.Join(keys, "."), err))
			continue
		}
		if err := set(tree, keys, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errs
}

func isOtherTool(name string) bool {
	for _, o := range otherTools {
		if name == o || (strings.HasSuffix(o, "_") && strings.HasPrefix(name, o)) {
			return true
		}
	}
	return false
}

// resolveEnv finds the field that rest (a variable's name without
// GUILD_) names, below the schema type t whose part of the tree is node
// (nil when the file lacks it). t is nil for free-form module settings.
// It returns the field's key path and type (nil for a free-form setting).
func resolveEnv(rest string, t reflect.Type, node any, modules []string) (keys []string, leaf reflect.Type, ok bool) {
	type cand struct {
		key     string
		t       reflect.Type // nil: free-form
		child   any
		section bool // a mapping: only its fields can be set
	}
	var cands []cand
	m, _ := node.(map[string]any)
	switch {
	case t == nil: // a module's settings: the keys present
		for k, v := range m {
			_, isMap := v.(map[string]any)
			cands = append(cands, cand{k, nil, v, isMap})
		}
	case t == modulesType: // the modules' sections, present or registered
		for _, k := range slices.Sorted(maps.Keys(m)) {
			cands = append(cands, cand{k, nil, m[k], true})
		}
		for _, k := range modules {
			if _, dup := m[k]; !dup {
				cands = append(cands, cand{k, nil, nil, true})
			}
		}
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			if k := fieldKey(t.Field(i)); k != "" {
				ft := t.Field(i).Type
				cands = append(cands, cand{k, ft, m[k], isSection(ft)})
			}
		}
	case t.Kind() == reflect.Map: // nodes, routes, headers: the keys present
		for k, v := range m {
			cands = append(cands, cand{k, t.Elem(), v, isSection(t.Elem())})
		}
	default:
		return nil, nil, false
	}
	// Longer keys first, so that WS_PATH is ws_path before it is ws.
	slices.SortStableFunc(cands, func(a, b cand) int { return len(b.key) - len(a.key) })
	for _, c := range cands {
		up := EnvName(c.key)
		if rest == up && !c.section {
			return []string{c.key}, c.t, true
		}
		if sub, found := strings.CutPrefix(rest, up+"_"); found && c.section {
			ct := c.t
			for ct != nil && ct.Kind() == reflect.Pointer {
				ct = ct.Elem()
			}
			if ks, lt, ok := resolveEnv(sub, ct, c.child, modules); ok {
				return append([]string{c.key}, ks...), lt, true
			}
		}
	}
	return nil, nil, false
}

var modulesType = reflect.TypeFor[map[string]any]()

// isSection reports whether t is a mapping of the schema rather than a
// value.
func isSection(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return (t.Kind() == reflect.Struct && t != durationType) || t.Kind() == reflect.Map
}

// envValue turns a variable's value into a generic value of the leaf's
// kind, checking it.
func envValue(leaf reflect.Type, s string) (any, error) {
	if leaf == nil { // free-form: a YAML scalar (50, true, 50ms, text)
		var v any
		if err := yaml3.Unmarshal([]byte(s), &v); err != nil {
			return s, nil
		}
		switch t := v.(type) {
		case int:
			return int64(t), nil
		case map[string]any, []any, nil:
			return s, nil // only scalars: the text as it is
		}
		return v, nil
	}
	for leaf.Kind() == reflect.Pointer { // an optional value (starttls)
		leaf = leaf.Elem()
	}
	if leaf == durationType {
		if _, err := time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%q is not a duration (like 5s or 250ms)", s)
		}
		return s, nil
	}
	switch leaf.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Int:
		if _, err := strconv.Atoi(s); err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return json.Number(s), nil
	case reflect.Float64:
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return json.Number(s), nil
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case reflect.Slice:
		list := []any{}
		for e := range strings.SplitSeq(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		return list, nil
	}
	return nil, fmt.Errorf("cannot be set from the environment")
}

// set puts v at keys in the tree, making the mappings on the way.
func set(tree map[string]any, keys []string, v any) error {
	m := tree
	for i, k := range keys[:len(keys)-1] {
		switch next := m[k].(type) {
		case map[string]any:
			m = next
		case nil:
			n := make(map[string]any)
			m[k] = n
			m = n
		default:
			return fmt.Errorf("%s is %s in the file, not a mapping", strings.Join(keys[:i+1], "."), describe(next))
		}
	}
	m[keys[len(keys)-1]] = v
	return nil
}

// etcdPassword returns the value of EtcdPasswordEnv among env (the last
// one, as the environment keeps one) and whether it is there.
func etcdPassword(env []string) (string, bool) {
	var pw string
	found := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, EtcdPasswordEnv+"="); ok {
			pw, found = v, true
		}
	}
	return pw, found
}
