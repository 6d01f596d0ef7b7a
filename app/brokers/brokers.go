// Package brokers lets a program started by package app run its cluster on
// the broker transports the cluster file can name (cluster.transport.kind
// nats, amqp or redis):
//
//	node, err := app.Start(ctx, cfg, name, registry, brokers.Options()...)
//
// guild run passes them. It is a package of its own so that a program on
// the TCP mesh does not link the brokers' clients, nor the NATS server
// that a node embeds in development mode (nodes.<name>.nats).
package brokers

import (
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/amqp"
	"github.com/guildkit/guild/transport/nats"
	"github.com/guildkit/guild/transport/nats/natsembed"
	"github.com/guildkit/guild/transport/redis"
)

// Options returns the app options that make the broker transports
// available: app.WithTransport for nats, amqp and redis.
func Options() []app.Option {
	return []app.Option{
		app.WithTransport(config.TransportNATS, NATS),
		app.WithTransport(config.TransportAMQP, AMQP),
		app.WithTransport(config.TransportRedis, Redis),
	}
}

// AMQP makes a node's transport/amqp configuration from the cluster file.
func AMQP(cfg *config.Config, _ string, _ *slog.Logger) (transport.Config, func() error, error) {
	t := cfg.Cluster.Transport
	c := amqp.Config{URL: t.URL, Prefix: t.Prefix, Options: t.Bus(), ReconnectMin: t.ReconnectMin, ReconnectMax: t.ReconnectMax}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, nil, nil
}

// Redis makes a node's transport/redis configuration from the cluster
// file: url is redis://[user:pass@]host:port/db or host:port.
func Redis(cfg *config.Config, _ string, _ *slog.Logger) (transport.Config, func() error, error) {
	t := cfg.Cluster.Transport
	c := redis.Config{Addr: t.URL, Prefix: t.Prefix, Options: t.Bus()}
	if strings.Contains(t.URL, "://") {
		o, err := goredis.ParseURL(t.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("url %q: %w", t.URL, err)
		}
		if o.TLSConfig != nil {
			return nil, nil, fmt.Errorf("url %q: TLS to Redis cannot be set from the cluster file yet (set cluster.NodeConfig.TLS from Go)", t.URL)
		}
		c.Addr, c.Username, c.Password, c.DB = o.Addr, o.Username, o.Password, o.DB
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, nil, nil
}

// NATS makes a node's transport/nats configuration from the cluster file.
// A node that sets nats (nodes.<name>.nats) first starts the embedded
// server there, which stops when the node has left.
func NATS(cfg *config.Config, node string, log *slog.Logger) (transport.Config, func() error, error) {
	t := cfg.Cluster.Transport
	c := nats.Config{URL: cfg.NATSURL(), Prefix: t.Prefix, Options: t.Bus()}
	spec, _ := cfg.Node(node)
	if spec == nil || spec.NATS == "" {
		return c, nil, nil
	}
	s, err := natsembed.Start(spec.NATS)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS (nodes.%s.nats): %w", node, err)
	}
	c.URL = s.URL()
	log.Info("embedded NATS started", "url", s.URL())
	return c, func() error { s.Close(); return nil }, nil
}
