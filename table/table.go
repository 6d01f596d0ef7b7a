package table

import (
	"fmt"
	"iter"
	"reflect"
	"runtime/debug"
	"strings"
)

// Table is one table of a set: rows of type R, keyed by K (the type of
// R's key field), in file order. It is a field of a set type, tagged with
// its file (see the package doc); the set fills it on each load. A Table
// in a published snapshot never changes, so its methods are safe for
// concurrent use; the zero Table has no rows.
type Table[K comparable, R any] struct {
	rows  []R
	keys  []K
	index map[K]int32
	file  string
	hash  string
}

// Get returns a copy of the row with key k, and whether there is one.
func (t *Table[K, R]) Get(k K) (R, bool) {
	if i, ok := t.index[k]; ok {
		return t.rows[i], true
	}
	var zero R
	return zero, false
}

// Ptr returns the row with key k in place, or nil: no copy, for large
// rows. The row belongs to the snapshot, which other goroutines read: do
// not modify it.
func (t *Table[K, R]) Ptr(k K) *R {
	if i, ok := t.index[k]; ok {
		return &t.rows[i]
	}
	return nil
}

// Has reports whether there is a row with key k.
func (t *Table[K, R]) Has(k K) bool {
	_, ok := t.index[k]
	return ok
}

// Len returns the number of rows.
func (t *Table[K, R]) Len() int { return len(t.rows) }

// All yields each row's key and a pointer to the row, in file order.
// The rows belong to the snapshot: do not modify them.
func (t *Table[K, R]) All() iter.Seq2[K, *R] {
	return func(yield func(K, *R) bool) {
		for i := range t.rows {
			if !yield(t.keys[i], &t.rows[i]) {
				return
			}
		}
	}
}

// File returns the table's file, relative to its set's directory.
func (t *Table[K, R]) File() string { return t.file }

// Hash returns the first 12 hex digits of the SHA-256 of the file the
// table was loaded from.
func (t *Table[K, R]) Hash() string { return t.hash }

// tableField is what a set sees of its Table fields, whatever their
// types.
type tableField interface {
	types() (key, row reflect.Type)
	load(d *decoder, plan *structPlan, data []byte, f format, hash string)
	rowCount() int
}

func (t *Table[K, R]) types() (key, row reflect.Type) {
	return reflect.TypeFor[K](), reflect.TypeFor[R]()
}

func (t *Table[K, R]) rowCount() int { return len(t.rows) }

// rowValidator is a row type's own check.
type rowValidator interface{ Validate() error }

// load parses data (the file d.file) into t's rows, checks the keys and
// runs the rows' Validate. Problems go to d.
func (t *Table[K, R]) load(d *decoder, plan *structPlan, data []byte, f format, hash string) {
	t.file, t.hash = d.file, hash
	nodes := parseRows(d, f, data)
	if len(d.errs) > 0 {
		return
	}
	t.rows = make([]R, len(nodes))
	t.keys = make([]K, len(nodes))
	t.index = make(map[K]int32, len(nodes))
	lines := make([]int, len(nodes)) // the line of each row, for duplicates
	keyName := strings.ToLower(plan.fields[plan.key].name)
	keyIndex := plan.fields[plan.key].index
	n := 0
	for _, rn := range nodes {
		if d.full() {
			break
		}
		if !hasKey(rn, keyName) {
			what := "key"
			if d.csv {
				what = "column"
			}
			d.fail(rn, "", "the row has no %s (%s %q)", plan.fields[plan.key].name, what, plan.fields[plan.key].name)
			continue
		}
		rv := reflect.ValueOf(&t.rows[n]).Elem()
		if !d.row(rn, rv, plan) {
			continue
		}
		k := rv.Field(keyIndex).Interface().(K)
		if i, dup := t.index[k]; dup {
			d.fail(rn, plan.fields[plan.key].name, "duplicate key %v (also the key of the row at line %d)", k, lines[i])
			continue
		}
		if v, ok := any(&t.rows[n]).(rowValidator); ok {
			if err := safeValidate(v); err != nil {
				d.fail(rn, "", "row %v: %v", k, err)
				continue
			}
		}
		t.index[k] = int32(n)
		t.keys[n] = k
		lines[n] = rn.line
		n++
	}
	if len(d.errs) > 0 {
		return
	}
	t.rows, t.keys = t.rows[:n:n], t.keys[:n:n]
}

// hasKey reports whether the row n sets its key (a CSV cell that is not
// empty).
func hasKey(n *node, lower string) bool {
	for i, k := range n.keys {
		if strings.ToLower(k.text) == lower {
			v := n.vals[i]
			return v.kind != kNull && !(v.kind == kText && strings.TrimSpace(v.text) == "")
		}
	}
	return false
}

// safeValidate calls v.Validate, turning a panic into an error.
func safeValidate(v rowValidator) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return v.Validate()
}

// panicError is a panic in a Validate.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("Validate panicked: %v", e.value) }
