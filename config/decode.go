package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
)

var durationType = reflect.TypeFor[time.Duration]()

func reflectValue(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }

// join appends key to the field path p.
func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

// fieldKey returns the key of a struct field in the file, or "" for a
// field that is not one.
func fieldKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

// decoder assigns a generic tree to the Config's fields, strictly: it
// records every unknown key and every value of the wrong kind, by path,
// and goes on.
type decoder struct{ errs []error }

func (d *decoder) fail(path, format string, a ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
}

// describe names the kind of a generic value for an error.
func describe(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("%q", t)
	case json.Number:
		return string(t)
	case bool:
		return fmt.Sprint(t)
	}
	return fmt.Sprintf("%v", v)
}

// value assigns v to rv. A nil v (an empty or null value) leaves rv as it
// is.
func (d *decoder) value(path string, v any, rv reflect.Value) {
	if v == nil {
		return
	}
	t := rv.Type()
	switch {
	case t == durationType:
		s, ok := v.(string)
		if n, isNum := v.(json.Number); isNum && n == "0" {
			s, ok = "0s", true
		}
		if !ok {
			d.fail(path, "%s is not a duration (like 5s or 250ms)", describe(v))
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, "%q is not a duration (like 5s or 250ms)", s)
			return
		}
		rv.SetInt(int64(dur))
		return
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := scalarText(v)
		if !ok {
			d.fail(path, "want a string, got %s", describe(v))
			return
		}
		rv.SetString(s)
	case reflect.Int:
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil {
			d.fail(path, "%s is not a whole number", describe(v))
			return
		}
		rv.SetInt(i)
	case reflect.Float64:
		n, ok := v.(json.Number)
		f, err := n.Float64()
		if !ok || err != nil {
			d.fail(path, "%s is not a number", describe(v))
			return
		}
		rv.SetFloat(f)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.fail(path, "%s is not true or false", describe(v))
			return
		}
		rv.SetBool(b)
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			d.fail(path, "want a list, got %s", describe(v))
			return
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, e := range list {
			d.value(fmt.Sprintf("%s[%d]", path, i), e, s.Index(i))
		}
		rv.Set(s)
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(t.Elem()))
		}
		d.value(path, v, rv.Elem())
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			d.fail(path, "want a mapping, got %s", describe(v))
			return
		}
		if rv.IsNil() {
			rv.Set(reflect.MakeMap(t))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if t.Elem().Kind() == reflect.Interface {
				e := reflect.Zero(t.Elem())
				if m[k] != nil {
					e = reflect.ValueOf(plain(m[k]))
				}
				rv.SetMapIndex(reflect.ValueOf(k), e)
				continue
			}
			e := reflect.New(t.Elem()).Elem()
			d.value(join(path, k), m[k], e)
			if e.Kind() == reflect.Pointer && e.IsNil() { // an empty section
				e.Set(reflect.New(t.Elem().Elem()))
			}
			rv.SetMapIndex(reflect.ValueOf(k), e)
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.fail(path, "want a mapping, got %s", describe(v))
			return
		}
		fields := make(map[string]int)
		for i := range t.NumField() {
			if k := fieldKey(t.Field(i)); k != "" {
				fields[k] = i
			}
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			i, ok := fields[k]
			if !ok {
				d.fail(join(path, k), "unknown key (the keys here are %s)", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
				continue
			}
			d.value(join(path, k), m[k], rv.Field(i))
		}
	default:
		d.fail(path, "cannot decode into %s", t)
	}
}

// scalarText returns the text of a scalar: a number or a boolean where a
// string is expected keeps its spelling (addr: 1.2 is the string "1.2").
func scalarText(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return string(t), true
	case bool:
		return fmt.Sprint(t), true
	}
	return "", false
}

// plain turns a generic tree's numbers into int64 or float64, for the
// free-form module settings.
func plain(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = plain(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = plain(e)
		}
		return out
	}
	return v
}
