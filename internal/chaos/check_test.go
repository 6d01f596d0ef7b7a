package chaos_test

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// violations collects what the checker found; each is a sentence a human
// can act on.
type violations []string

func (v *violations) addf(format string, args ...any) {
	*v = append(*v, fmt.Sprintf(format, args...))
}

// checkReplies: every reply answers its own request, and no call waited
// past its deadline (plus slack, the time a busy machine may take to wake
// a caller whose deadline passed).
func checkReplies(ops []op, slack time.Duration, v *violations) {
	for _, o := range ops {
		if o.ok && !strings.Contains(o.reply, "|"+o.req+"|") {
			v.addf("%s %s by %s got a reply to another request: %q", o.kind, o.req, o.client, o.reply)
		}
		if late := o.end.Sub(o.deadline); late > slack {
			v.addf("%s %s by %s returned %v after its deadline (err %v)", o.kind, o.req, o.client, late.Round(time.Millisecond), o.err)
		}
	}
}

// checkWrites: in the final store, every acknowledged write is present
// exactly once, nothing is there twice, and nothing is there that no
// client wrote. final maps each grain to its stored list.
func checkWrites(ops []op, final map[string][]string, v *violations) (acked, unknown int) {
	issued := make(map[string]op)
	for _, o := range ops {
		if o.kind == opWrite {
			issued[o.write] = o
		}
	}
	for key, list := range final {
		seen := make(map[string]int)
		for _, w := range list {
			seen[w]++
			o, ok := issued[w]
			switch {
			case !ok:
				v.addf("grain %s holds %q, which no client wrote", key, w)
			case o.key != key:
				v.addf("grain %s holds %q, written to grain %s", key, w, o.key)
			}
		}
		for w, n := range seen {
			if n > 1 {
				v.addf("grain %s holds write %q %d times", key, w, n)
			}
		}
	}
	for _, o := range issued {
		if o.refused {
			for key, list := range final {
				if slices.Contains(list, o.write) {
					v.addf("write %q to grain %s was refused (%v), yet grain %s holds it", o.write, o.key, o.err, key)
				}
			}
			continue
		}
		if !o.ok {
			unknown++
			continue
		}
		acked++
		if !slices.Contains(final[o.key], o.write) {
			v.addf("acknowledged write %q to grain %s (by %s, %s) is not in the store", o.write, o.key, o.client, o.end.Format("15:04:05.000"))
		}
	}
	return acked, unknown
}

// checkSingle: no two activations of a grain (or holders of a name)
// served at overlapping times. An activation's serving interval runs from
// the first message it handled to its last.
func checkSingle(serves []serve, v *violations) (activations int) {
	type span struct {
		holder      uint64
		node        int
		first, last time.Time
	}
	byWhat := make(map[string]map[uint64]*span)
	for _, s := range serves {
		m := byWhat[s.what]
		if m == nil {
			m = make(map[uint64]*span)
			byWhat[s.what] = m
		}
		sp := m[s.holder]
		if sp == nil {
			m[s.holder] = &span{holder: s.holder, node: s.node, first: s.at, last: s.at}
			continue
		}
		if s.at.Before(sp.first) {
			sp.first = s.at
		}
		if s.at.After(sp.last) {
			sp.last = s.at
		}
	}
	for what, m := range byWhat {
		spans := make([]*span, 0, len(m))
		for _, sp := range m {
			spans = append(spans, sp)
		}
		activations += len(spans)
		sort.Slice(spans, func(i, j int) bool { return spans[i].first.Before(spans[j].first) })
		for i := 1; i < len(spans); i++ {
			prev, cur := spans[i-1], spans[i]
			if !cur.first.After(prev.last) {
				v.addf("%s: activation %d on node %d served %s..%s, overlapping activation %d on node %d serving from %s",
					what, prev.holder, prev.node, stamp(prev.first), stamp(prev.last), cur.holder, cur.node, stamp(cur.first))
			}
		}
	}
	return activations
}

func stamp(t time.Time) string { return t.Format("15:04:05.000000") }

// The grain model for porcupine: a grain's state is its list of writes.
type (
	lzInput struct {
		write bool
		id    string // the write's ID
	}
	lzOutput struct {
		ok   bool     // false: the outcome is unknown (error, timeout)
		list []string // a read's result
	}
)

var grainModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		var keys []string
		for _, o := range history {
			k := o.Metadata.(string)
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], o)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(lzInput), output.(lzOutput)
		if in.write {
			// An unknown outcome may have taken effect; a write that
			// took effect appends. (One that did not is placed after
			// every later read by the checker, since its return is open.)
			if st == "" {
				return true, in.id
			}
			return true, st + "," + in.id
		}
		return out.ok && strings.Join(out.list, ",") == st, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(lzInput), output.(lzOutput)
		if in.write {
			return fmt.Sprintf("write(%s) ok=%v", in.id, out.ok)
		}
		return fmt.Sprintf("read() = %v", out.list)
	},
}

// checkLinearizable checks each grain's writes and successful reads,
// with the final stored lists as reads after everything.
//
// A write whose outcome is unknown (a timeout, a lost peer) and whose ID
// is not in the final store never took effect (a grain never removes an
// ID), so it is left out: were it observed by a read meanwhile, that read
// could not be linearized, and the check fails as it should. Leaving them
// out keeps the search small.
func checkLinearizable(ops []op, final map[string][]string, timeout time.Duration, v *violations) porcupine.CheckResult {
	stored := make(map[string]bool)
	for _, list := range final {
		for _, w := range list {
			stored[w] = true
		}
	}
	var history []porcupine.Operation
	var last int64
	for _, o := range ops {
		if (o.kind != opWrite && (o.kind != opRead || !o.ok)) || o.refused {
			continue
		}
		if o.kind == opWrite && !o.ok && !stored[o.write] {
			continue
		}
		ret := o.end.UnixNano()
		if o.kind == opWrite && !o.ok {
			ret = math.MaxInt64 // it may take effect at any time after its call
		}
		history = append(history, porcupine.Operation{
			ClientId: 0,
			Input:    lzInput{write: o.kind == opWrite, id: o.write},
			Call:     o.start.UnixNano(),
			Output:   lzOutput{ok: o.ok, list: o.result},
			Return:   ret,
			Metadata: o.key,
		})
		last = max(last, o.end.UnixNano())
	}
	for key, list := range final {
		history = append(history, porcupine.Operation{
			Input: lzInput{}, Output: lzOutput{ok: true, list: list},
			Call: last + 1, Return: last + 2, Metadata: key,
		})
	}
	res := porcupine.CheckOperationsTimeout(grainModel, history, timeout)
	if res == porcupine.Illegal {
		v.addf("the grains' history of writes and reads is not linearizable")
	}
	return res
}
