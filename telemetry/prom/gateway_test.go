package prom_test

import (
	"fmt"
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/prom"
)

// TestGatewayObserve: Observe times each request by route and code,
// leaves the metadata alone, and keeps the route label bounded: past 256
// routes the rest count as "other".
func TestGatewayObserve(t *testing.T) {
	m := prom.New()
	srv := startServer(t, m, func() bool { return true })
	md := actor.NewMetadata(gate.MetadataSessionID, "1.1.1/2")
	got, done := m.Observe("chat.Say", md)
	if got.Get(gate.MetadataSessionID) != "1.1.1/2" || got.Len() != 1 || done == nil {
		t.Fatalf("Observe returned %v (a done func: %v)", got, done != nil)
	}
	done(rpc.OK)
	_, done = m.Observe("chat.Say", md)
	done(rpc.NotFound)
	for i := range 300 {
		_, done := m.Observe(fmt.Sprintf("chat.M%d", i), md)
		done(rpc.OK)
	}
	fams := scrape(t, srv.URL()+"/metrics", token)
	const name = "guild_gateway_request_duration_seconds"
	if v := value(fams, name, "route", "chat.Say", "code", "OK"); v != 1 {
		t.Errorf("chat.Say OK: %v", v)
	}
	if v := value(fams, name, "route", "chat.Say", "code", "NotFound"); v != 1 {
		t.Errorf("chat.Say NotFound: %v", v)
	}
	if v := value(fams, name, "route", "other"); v != 300+1-256 {
		t.Errorf("other: %v, want %d", v, 300+1-256)
	}
	if n := len(fams[name].GetMetric()); n != 256+1+1 { // 256 routes' OK, chat.Say's NotFound, other
		t.Errorf("%d series, want %d", n, 258)
	}
	// Chained with another observer, both see the request.
	var seen []string
	other := func(route string, md actor.Metadata) (actor.Metadata, func(rpc.Code)) {
		return md.With("k", "v"), func(c rpc.Code) { seen = append(seen, route+" "+c.String()) }
	}
	obs := gate.Observers(other, nil, m.Observe)
	got, done = obs("chat.Say", md)
	if got.Get("k") != "v" {
		t.Fatalf("chained metadata %v", got)
	}
	done(rpc.OK)
	if len(seen) != 1 || seen[0] != "chat.Say OK" {
		t.Errorf("the other observer saw %q", seen)
	}
	if v := value(scrape(t, srv.URL()+"/metrics", token), name, "route", "chat.Say", "code", "OK"); v != 2 {
		t.Errorf("chat.Say OK after the chain: %v", v)
	}
	if gate.Observers() != nil || gate.Observers(nil) != nil {
		t.Error("Observers of none is not nil")
	}
}
