package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
)

// Webhook defaults.
const (
	// DefaultWebhookInterval is the least time between two POSTs.
	DefaultWebhookInterval = time.Second
	// DefaultWebhookTimeout bounds one POST, the reading of its answer
	// included.
	DefaultWebhookTimeout = 10 * time.Second
)

// WebhookConfig configures a Webhook. Zero fields take their defaults.
type WebhookConfig struct {
	// URL receives the batches: an http or https URL. Required.
	URL string
	// Headers are added to every request, such as an Authorization
	// header. Content-Type is application/json.
	Headers map[string]string
	// Source names the sender in each Batch (app sets the node's name).
	Source string
	// Queue bounds the failures waiting to be sent; beyond it they are
	// dropped and counted. Default DefaultQueue.
	Queue int
	// Batch bounds the failures of one POST. Default DefaultBatch.
	Batch int
	// Interval is the least time between two POSTs: the rate limit.
	// Default DefaultWebhookInterval.
	Interval time.Duration
	// Timeout bounds one POST. Default DefaultWebhookTimeout.
	Timeout time.Duration
	// Retries is how many times a POST that met a network error, a 5xx, a
	// 429 Too Many Requests or a 408 is tried again (after a 429 or 503,
	// no sooner than its Retry-After, up to MaxBackoff); negative: never.
	// Another 4xx is not retried. Default DefaultRetries.
	Retries int
	// Backoff is the wait before the first retry, doubled after each (up
	// to MaxBackoff), with jitter. Default DefaultBackoff.
	Backoff time.Duration
	// Client sends the requests. Default: a client of the Webhook's own.
	Client *http.Client
	// Logger receives failed deliveries. Default slog.Default().
	Logger *slog.Logger
}

// Webhook is an actor.Reporter that POSTs batches of failures as JSON
// (see the package doc for the schema). Its methods are safe for
// concurrent use; Report never blocks.
type Webhook struct {
	cfg     WebhookConfig
	origin  string // scheme://host of the URL, for errors
	headers http.Header
	client  *http.Client
	b       *batcher
}

// Validate reports the first invalid field. Zero fields are valid, except
// URL.
func (cfg WebhookConfig) Validate() error {
	_, err := cfg.check()
	return err
}

// check validates cfg and returns its parsed URL.
func (cfg WebhookConfig) check() (*url.URL, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return nil, fmt.Errorf("report: WebhookConfig.URL is required")
	case err != nil:
		return nil, errors.New("report: WebhookConfig.URL does not parse as a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("report: WebhookConfig.URL %q is not http or https", redact(u))
	case u.Host == "":
		return nil, fmt.Errorf("report: WebhookConfig.URL %q has no host", redact(u))
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("report: WebhookConfig.Timeout %v is negative", cfg.Timeout)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Headers)) {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("report: WebhookConfig.Headers: %q is not a header name", k)
		}
		if strings.ContainsAny(cfg.Headers[k], "\r\n\x00") {
			return nil, fmt.Errorf("report: WebhookConfig.Headers[%s]: the value holds a line break", k)
		}
	}
	if _, err := newLimits("WebhookConfig", cfg.Queue, cfg.Batch, cfg.Interval, DefaultWebhookInterval, cfg.Retries, cfg.Backoff); err != nil {
		return nil, err
	}
	return u, nil
}

// NewWebhook checks cfg and starts a Webhook, whose goroutine runs until
// Close.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := cfg.check()
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(cfg.Headers))
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	lim, _ := newLimits("WebhookConfig", cfg.Queue, cfg.Batch, cfg.Interval, DefaultWebhookInterval, cfg.Retries, cfg.Backoff)
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	w := &Webhook{cfg: cfg, headers: h, client: cfg.Client, origin: u.Scheme + "://" + u.Host}
	if w.client == nil {
		w.client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	w.b = newBatcher(lim, cfg.Source, w.post, cfg.Logger)
	return w, nil
}

// Report queues f for the next POST, or drops and counts it when the
// queue is full or the Webhook closed. It never blocks.
func (w *Webhook) Report(f actor.Failure) { w.b.report(f) }

// Close POSTs what is queued, within ctx's deadline (DefaultCloseTimeout
// when it has none), then stops. A POST still in flight at the deadline
// is cancelled. It returns ErrClosed when called again.
func (w *Webhook) Close(ctx context.Context) error {
	err := w.b.close(ctx)
	if w.cfg.Client == nil {
		w.client.CloseIdleConnections()
	}
	return err
}

// Stats returns the Webhook's counters.
func (w *Webhook) Stats() Stats { return w.b.stats() }

// post sends one batch: nil for a 2xx, a permanent error for a 4xx other
// than 429 and 408, an error to retry later for those and 5xx.
func (w *Webhook) post(ctx context.Context, b *Batch) error {
	body, err := json.Marshal(b)
	if err != nil {
		return permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return permanent(err)
	}
	for k, v := range w.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "guild-report")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = w.origin // the path and query may hold a token: keep them out of logs
		}
		return err
	}
	// Read a little of the answer, so that the connection can be reused
	// and an error can say why.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	err = fmt.Errorf("report: webhook answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		// Throttled, or too slow for the server this time: worth a retry,
		// not before the server's Retry-After.
		return later(err, retryAfter(resp.Header.Get("Retry-After"), time.Now()))
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return permanent(err)
	case resp.StatusCode == http.StatusServiceUnavailable:
		return later(err, retryAfter(resp.Header.Get("Retry-After"), time.Now()))
	}
	return err
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date
// (relative to now). It returns 0 for none or a malformed one.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact shows only a URL's scheme and host in errors: its path and
// query may hold a token.
func redact(u *url.URL) string { return u.Scheme + "://" + u.Host }

// validHeaderName reports whether s is an HTTP header name (a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}
