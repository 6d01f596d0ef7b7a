package actor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Addr is a node's 32-bit logical address, written cluster.type.index, as in
// clustergo: 12 bits of cluster (0–4095), 8 bits of node type (0–255) and 12
// bits of index (0–4095). Type 255 is reserved for harbor nodes, which relay
// between clusters.
type Addr uint32

// Bit layout and limits of an Addr.
const (
	MaxCluster = 1<<12 - 1 // largest cluster number
	MaxType    = 1<<8 - 1  // largest node type
	MaxIndex   = 1<<12 - 1 // largest index within a type
	HarborType = MaxType   // the node type reserved for harbor nodes
)

// ErrBadAddr is returned for an address that is malformed or out of range.
var ErrBadAddr = errors.New("actor: bad address")

// NewAddr builds an address from its three parts. It returns ErrBadAddr when a
// part is out of range.
func NewAddr(cluster, typ, index int) (Addr, error) {
	if cluster < 0 || cluster > MaxCluster {
		return 0, fmt.Errorf("%w: cluster %d is outside 0..%d", ErrBadAddr, cluster, MaxCluster)
	}
	if typ < 0 || typ > MaxType {
		return 0, fmt.Errorf("%w: type %d is outside 0..%d", ErrBadAddr, typ, MaxType)
	}
	if index < 0 || index > MaxIndex {
		return 0, fmt.Errorf("%w: index %d is outside 0..%d", ErrBadAddr, index, MaxIndex)
	}
	return Addr(uint32(cluster)<<20 | uint32(typ)<<12 | uint32(index)), nil
}

// MustAddr is NewAddr for constants in tests and examples: it panics on a bad
// part. Use NewAddr or ParseAddr for input.
func MustAddr(cluster, typ, index int) Addr {
	a, err := NewAddr(cluster, typ, index)
	if err != nil {
		panic(err)
	}
	return a
}

// ParseAddr parses "cluster.type.index", for example "1.2.3".
func ParseAddr(s string) (Addr, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return 0, fmt.Errorf("%w: %q is not cluster.type.index", ErrBadAddr, s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || p == "" || p[0] == '+' || p[0] == '-' {
			return 0, fmt.Errorf("%w: %q: part %d (%q) is not a number", ErrBadAddr, s, i+1, p)
		}
		n[i] = v
	}
	return NewAddr(n[0], n[1], n[2])
}

// Cluster returns the cluster part.
func (a Addr) Cluster() int { return int(a >> 20) }

// Type returns the node-type part.
func (a Addr) Type() int { return int(a>>12) & MaxType }

// Index returns the index part.
func (a Addr) Index() int { return int(a) & MaxIndex }

// IsHarbor reports whether the address belongs to a harbor node (type 255).
func (a Addr) IsHarbor() bool { return a.Type() == HarborType }

// String formats the address as cluster.type.index.
func (a Addr) String() string {
	return strconv.Itoa(a.Cluster()) + "." + strconv.Itoa(a.Type()) + "." + strconv.Itoa(a.Index())
}

// MarshalText implements encoding.TextMarshaler, so addresses read well in
// JSON and YAML.
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseAddr.
func (a *Addr) UnmarshalText(b []byte) error {
	v, err := ParseAddr(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
