package prom_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/rpc"
)

// get fetches url with the bearer token (none when empty) and returns
// the status code and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches and parses a /metrics endpoint.
func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, url, token)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// labels (name=value pairs): a counter's or gauge's value, a histogram's
// count. It returns -1 when there is no such series.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// echoDesc is a hand-written rpc service, test.Echo, with methods Say
// (echoes) and Fail (answers NotFound).
var echoDesc = &rpc.ServiceDesc{
	Name: "test.Echo",
	Methods: []rpc.MethodDesc{
		{
			Name:       "Say",
			NewRequest: func() proto.Message { return new(wrapperspb.StringValue) },
			Handle: func(_ any, _ *rpc.Context, req proto.Message) (proto.Message, error) {
				return wrapperspb.String(req.(*wrapperspb.StringValue).GetValue()), nil
			},
		},
		{
			Name:       "Fail",
			NewRequest: func() proto.Message { return new(wrapperspb.StringValue) },
			Handle: func(_ any, _ *rpc.Context, _ proto.Message) (proto.Message, error) {
				return nil, rpc.Error(rpc.NotFound, "no such thing")
			},
		},
	},
}
