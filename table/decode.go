package table

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid matches every problem found in a table set's files: a file
// that does not parse, a value of the wrong type, a duplicate key, a row
// or a set that fails its Validate.
var ErrInvalid = errors.New("table: invalid data")

// Error is one problem in a table file. Its message reads
// file:line:column: field: what (the parts that are not known are left
// out).
type Error struct {
	// File is the file's name, relative to the set's directory.
	File string
	// Line and Column locate the problem, both from 1; 0 when unknown.
	Line, Column int
	// Field is the row's field, or column, at fault ("price",
	// "rewards[2].item"); empty for a problem of the whole file or row.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// decoder turns nodes into Go values by the plans of their struct types,
// collecting up to max problems.
type decoder struct {
	file  string
	csv   bool
	plans map[reflect.Type]*structPlan
	errs  []error
	max   int
}

func (d *decoder) full() bool { return len(d.errs) >= d.max }

func (d *decoder) failAt(line, col int, field, format string, a ...any) {
	if d.full() {
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (d *decoder) fail(n *node, field, format string, a ...any) {
	d.failAt(n.line, n.col, field, format, a...)
}

// structPlan is how the fields of a struct type are read.
type structPlan struct {
	typ    reflect.Type
	fields []fieldPlan
	byName map[string]int // lower-cased name -> index in fields
	names  []string       // the names, in field order, for errors
	key    int            // the key field's index in fields, -1 when none (nested structs)
}

type fieldPlan struct {
	name  string
	index int // in the struct
	typ   reflect.Type
}

var durationType = reflect.TypeFor[time.Duration]()

// planner makes the plans of a row type and the struct types it holds.
type planner struct {
	plans map[reflect.Type]*structPlan
	csv   bool
}

// rowPlan makes the plan of row type t, with its key field.
func (p *planner) rowPlan(t, key reflect.Type) (*structPlan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("the row type %s is not a struct", t)
	}
	sp, err := p.structPlan(t, "")
	if err != nil {
		return nil, err
	}
	keyAt := -1
	for i := range sp.fields {
		f := t.Field(sp.fields[i].index)
		if _, opts, _ := strings.Cut(f.Tag.Get("table"), ","); hasOpt(opts, "key") {
			if keyAt >= 0 {
				return nil, fmt.Errorf("%s has two key fields, %s and %s", t, t.Field(sp.fields[keyAt].index).Name, f.Name)
			}
			keyAt = i
		}
	}
	if keyAt < 0 {
		for i := range sp.fields {
			if t.Field(sp.fields[i].index).Name == "ID" {
				keyAt = i
			}
		}
	}
	if keyAt < 0 {
		return nil, fmt.Errorf("%s has no key field: tag one `table:\"name,key\"`, or name it ID", t)
	}
	kf := sp.fields[keyAt]
	if kf.typ != key {
		return nil, fmt.Errorf("the key field %s.%s is a %s, but the table's key type is %s", t, t.Field(kf.index).Name, kf.typ, key)
	}
	switch key.Kind() {
	case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return nil, fmt.Errorf("the key field %s.%s is a %s: a key is a string or an integer", t, t.Field(kf.index).Name, key)
	}
	c := *sp
	c.key = keyAt
	return &c, nil
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if strings.TrimSpace(o) == want {
			return true
		}
	}
	return false
}

// structPlan makes (or returns) the plan of struct type t.
func (p *planner) structPlan(t reflect.Type, path string) (*structPlan, error) {
	if sp, ok := p.plans[t]; ok {
		return sp, nil
	}
	sp := &structPlan{typ: t, byName: make(map[string]int), key: -1}
	p.plans[t] = sp // before the fields: a type may hold itself through a pointer or a slice
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("table"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous {
			return nil, fmt.Errorf("%s: embedded field %s is not supported: give it a name", t, f.Name)
		}
		if name == "" {
			name = f.Name
		}
		lower := strings.ToLower(name)
		if j, dup := sp.byName[lower]; dup {
			return nil, fmt.Errorf("%s: fields %s and %s have the same name %q (names match without case)", t, t.Field(sp.fields[j].index).Name, f.Name, name)
		}
		if err := p.check(f.Type, joinPath(path, name)); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		sp.byName[lower] = len(sp.fields)
		sp.fields = append(sp.fields, fieldPlan{name: name, index: i, typ: f.Type})
		sp.names = append(sp.names, name)
	}
	return sp, nil
}

func joinPath(p, name string) string {
	if p == "" {
		return name
	}
	return p + "." + name
}

// check says whether a field of type t can be read (from a CSV cell: a
// scalar only).
func (p *planner) check(t reflect.Type, path string) error {
	if t == durationType {
		return nil
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return nil
	}
	if p.csv {
		return fmt.Errorf("a %s cannot be read from a CSV cell (a number, a bool, a string or a duration)", t)
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice:
		return p.check(t.Elem(), path)
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			return fmt.Errorf("a map's key is a string or an integer, not a %s", t.Key())
		}
		return p.check(t.Elem(), path)
	case reflect.Struct:
		_, err := p.structPlan(t, path)
		return err
	}
	return fmt.Errorf("a %s cannot be read from a table file", t)
}

// row reads the map n into the struct v by plan sp. It returns false
// when it found a problem.
func (d *decoder) row(n *node, v reflect.Value, sp *structPlan) bool {
	before := len(d.errs)
	d.structValue(n, v, sp, "", 0)
	return len(d.errs) == before && !d.full()
}

func (d *decoder) structValue(n *node, v reflect.Value, sp *structPlan, path string, depth int) {
	what := "key"
	if d.csv {
		what = "column"
	}
	for i, k := range n.keys {
		j, ok := sp.byName[strings.ToLower(k.text)]
		if !ok {
			d.fail(k, "", "%s %q matches no field of %s (its fields are %s)", what, joinPath(path, k.text), sp.typ, strings.Join(sp.names, ", "))
			continue
		}
		f := sp.fields[j]
		d.value(n.vals[i], v.Field(f.index), joinPath(path, f.name), depth+1)
	}
}

// value reads n into v.
func (d *decoder) value(n *node, v reflect.Value, path string, depth int) {
	if d.full() {
		return
	}
	if depth > maxDepth {
		d.fail(n, path, "nested more than %d deep", maxDepth)
		return
	}
	t := v.Type()
	if n.kind == kNull || (n.kind == kText && n.text == "") {
		v.SetZero() // null, or an empty cell: the zero value
		return
	}
	if t == durationType {
		s, ok := n.text, n.kind == kStr || n.kind == kText
		if n.kind == kNum && n.text == "0" {
			s, ok = "0s", true
		}
		if !ok {
			d.fail(n, path, "%s is not a duration (like 1.5s or 250ms)", describe(n))
			return
		}
		dur, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			d.fail(n, path, "%q is not a duration (like 1.5s or 250ms)", s)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch t.Kind() {
	case reflect.String:
		switch {
		case n.kind == kStr, n.kind == kText, n.loose && (n.kind == kNum || n.kind == kBool):
			v.SetString(n.text)
		default:
			d.fail(n, path, "want a string, got %s", describe(n))
		}
	case reflect.Bool:
		switch n.kind {
		case kBool:
			v.SetBool(n.text == "true")
		case kText:
			switch strings.ToLower(strings.TrimSpace(n.text)) {
			case "true", "1":
				v.SetBool(true)
			case "false", "0":
				v.SetBool(false)
			default:
				d.fail(n, path, "%q is not true or false", n.text)
			}
		default:
			d.fail(n, path, "%s is not true or false", describe(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.number(n, path) {
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(n.text), 10, t.Bits())
		if err != nil {
			d.fail(n, path, "%s", numErr(n.text, t, err, "a whole number"))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !d.number(n, path) {
			return
		}
		u, err := strconv.ParseUint(strings.TrimSpace(n.text), 10, t.Bits())
		if err != nil {
			d.fail(n, path, "%s", numErr(n.text, t, err, "a whole number, 0 or more"))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		if !d.number(n, path) {
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(n.text), t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, "%s", numErr(n.text, t, err, "a finite number"))
			return
		}
		v.SetFloat(f)
	case reflect.Pointer:
		e := reflect.New(t.Elem())
		d.value(n, e.Elem(), path, depth+1)
		v.Set(e)
	case reflect.Slice:
		if n.kind != kList {
			d.fail(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.list), len(n.list))
		for i, e := range n.list {
			d.value(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if n.kind != kMap {
			d.fail(n, path, "want a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.keys))
		for i, k := range n.keys {
			kv := reflect.New(t.Key()).Elem()
			d.value(&node{kind: kText, text: k.text, line: k.line, col: k.col}, kv, path+"["+strconv.Quote(k.text)+"]", depth+1)
			ev := reflect.New(t.Elem()).Elem()
			d.value(n.vals[i], ev, path+"["+strconv.Quote(k.text)+"]", depth+1)
			m.SetMapIndex(kv, ev)
		}
		v.Set(m)
	case reflect.Struct:
		if n.kind != kMap {
			d.fail(n, path, "want a mapping, got %s", describe(n))
			return
		}
		d.structValue(n, v, d.plans[t], path, depth)
	default:
		d.fail(n, path, "cannot read a %s", t)
	}
}

// number checks that n can be a number.
func (d *decoder) number(n *node, path string) bool {
	if n.kind == kNum || n.kind == kText {
		return true
	}
	d.fail(n, path, "%s is not a number", describe(n))
	return false
}

func numErr(text string, t reflect.Type, err error, want string) string {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Sprintf("%s does not fit a %s", strings.TrimSpace(text), t)
	}
	return fmt.Sprintf("%q is not %s", text, want)
}

// describe names a node's value for an error.
func describe(n *node) string {
	switch n.kind {
	case kNull:
		return "null"
	case kBool, kNum:
		return n.text
	case kStr, kText:
		return strconv.Quote(n.text)
	case kList:
		return "a list"
	case kMap:
		return "a mapping"
	}
	return "a value"
}
