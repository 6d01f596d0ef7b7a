package etcd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// record is the JSON stored under <prefix>/members/<addr>.
type record struct {
	Addr      actor.Addr        `json:"addr"`
	Endpoint  string            `json:"endpoint,omitempty"`
	Available bool              `json:"available"`
	Export    bool              `json:"export"`
	Services  []string          `json:"services,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
	Started   time.Time         `json:"started"`
}

func encodeMember(m cluster.Member) ([]byte, error) {
	return json.Marshal(record(m))
}

func decodeMember(b []byte) (cluster.Member, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return cluster.Member{}, err
	}
	return cluster.Member(r), nil
}

// encodePID writes "cluster.type.index/serial".
func encodePID(p actor.PID) string {
	return p.Node.String() + "/" + strconv.FormatUint(p.Serial, 10)
}

// decodePID parses what encodePID writes.
func decodePID(s string) (actor.PID, error) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return actor.PID{}, fmt.Errorf("cluster/etcd: PID %q is not cluster.type.index/serial", s)
	}
	addr, err := actor.ParseAddr(s[:i])
	if err != nil {
		return actor.PID{}, err
	}
	serial, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || serial == 0 {
		return actor.PID{}, fmt.Errorf("cluster/etcd: PID %q has a bad serial", s)
	}
	return actor.PID{Node: addr, Serial: serial}, nil
}
