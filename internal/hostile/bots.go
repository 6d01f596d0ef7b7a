package hostile

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/client"
)

// BotConfig configures the good bots.
type BotConfig struct {
	// N is the number of bots; Every, how often each makes a request
	// (Target.Step).
	N     int
	Every time.Duration
	// Name prefixes the bots' player names.
	Name string
	// OnPush, optional, sees every push a bot gets (a test checks what
	// the game sends good players). It is called concurrently.
	OnPush func(route string, body []byte)
}

// Bots are well-behaved players: each joins, then makes a request every
// BotConfig.Every and records its latency. Window reports them.
type Bots struct {
	t       Target
	cfg     BotConfig
	rec     recorder
	clients []*client.Client
	closing atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// StartBots dials and joins cfg.N bots to t, then starts them playing.
func StartBots(ctx context.Context, t Target, cfg BotConfig) (*Bots, error) {
	b := &Bots{t: t, cfg: cfg}
	for i := range cfg.N {
		c, err := client.Dial(ctx, client.Config{
			Addr: "tcp://" + t.TCP,
			OnClose: func(error) {
				if !b.closing.Load() {
					b.rec.discons.Add(1)
				}
			},
		})
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("hostile: bot %d: dial: %w", i, err)
		}
		b.clients = append(b.clients, c)
		if cfg.OnPush != nil {
			c.OnAnyPush(cfg.OnPush)
		}
		if err := t.Join(ctx, c, fmt.Sprintf("%s%d", cfg.Name, i)); err != nil {
			b.Close()
			return nil, fmt.Errorf("hostile: bot %d: join: %w", i, err)
		}
	}
	run, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	for i, c := range b.clients {
		b.wg.Add(1)
		go b.play(run, c, time.Duration(i)*cfg.Every/time.Duration(cfg.N))
	}
	return b, nil
}

// play makes c's requests, every cfg.Every after a first pause of offset
// (the bots spread over the period), until ctx ends.
func (b *Bots) play(ctx context.Context, c *client.Client, offset time.Duration) {
	defer b.wg.Done()
	t := time.NewTimer(offset)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(b.cfg.Every)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		err := b.t.Step(rctx, c)
		d := time.Since(start)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			b.rec.fail()
		default:
			b.rec.ok(d)
		}
	}
}

// Window returns what the bots saw since the last call (or the start).
func (b *Bots) Window() Window { return b.rec.window() }

// Close stops the bots and closes their clients.
func (b *Bots) Close() {
	b.closing.Store(true)
	if b.cancel != nil {
		b.cancel()
	}
	b.wg.Wait()
	for _, c := range b.clients {
		_ = c.Close()
	}
}
