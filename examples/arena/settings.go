package arena

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of WorldSettings.
const (
	DefaultWidth   = 2000
	DefaultHeight  = 2000
	DefaultCell    = 250
	DefaultSpeed   = 200
	DefaultTick    = time.Second / 15
	DefaultIdle    = 30 * time.Second
	DefaultOrbs    = 60
	DefaultOrbLife = 30 * time.Second
	DefaultRound   = 2 * time.Minute
)

// MaxOrbs bounds WorldSettings.Orbs.
const MaxOrbs = 10_000

// ErrBadSettings is returned for invalid WorldSettings.
var ErrBadSettings = errors.New("arena: bad settings")

// Duration is a time.Duration written as text in a configuration
// ("66ms", "30s").
type Duration time.Duration

// UnmarshalText parses a duration such as "66ms".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as time.Duration's String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String returns the duration as time.Duration's String does.
func (d Duration) String() string { return time.Duration(d).String() }

// WorldSettings are the world module's settings: the modules.world
// section of a cluster file. Zero fields take their defaults.
//
//	modules:
//	  world: {tick: 50ms, cell: 250, speed: 200, idle: 30s, orbs: 60, orb_life: 30s, round: 2m, store: arena.db}
type WorldSettings struct {
	// Width and Height are the room's size, in world units. Default
	// 2000 x 2000.
	Width  float64 `yaml:"width" json:"width"`
	Height float64 `yaml:"height" json:"height"`
	// Cell is the side of an area-of-interest cell: a player is sent the
	// players in its cell and the eight around it. Default 250.
	Cell float64 `yaml:"cell" json:"cell"`
	// Speed is how fast players move, in units per second. Default 200.
	Speed float64 `yaml:"speed" json:"speed"`
	// Tick is how often the world moves the players and sends each one
	// its update. Default 1/15 s.
	Tick Duration `yaml:"tick" json:"tick"`
	// Idle is how long a player may go without a request to the world
	// (arena.Move) before it is dropped. Default 30s.
	Idle Duration `yaml:"idle" json:"idle"`
	// Spawn, optional, is the point [x, y] where every player starts;
	// without it a player starts near the player who arrived last (or
	// near the room's centre when the room is empty), so that they see
	// each other.
	Spawn []float64 `yaml:"spawn" json:"spawn"`
	// Orbs is how many orbs the room holds: each one picked up is
	// replaced at once. Default 60; at most MaxOrbs.
	Orbs int `yaml:"orbs" json:"orbs"`
	// OrbLife is how long an orb lasts, on average, if nobody picks it
	// up: each one lasts from half of it to one and a half times it, then
	// makes way for a new one, so that the orbs keep coming near every
	// player. Default 30s.
	OrbLife Duration `yaml:"orb_life" json:"orb_life"`
	// Round is how long a round lasts: then the best scores are
	// announced and every score starts again from zero. Default 2m.
	Round Duration `yaml:"round" json:"round"`
	// Store, optional, is the file of the embedded store (a bbolt file,
	// created if missing) that keeps the leaderboard's grains: the
	// leaderboard and each name's record survive a restart. Only one
	// process at a time may open it. Empty: the grains are kept in
	// memory, for as long as the world module runs.
	Store string `yaml:"store" json:"store"`
}

// withDefaults returns s with its zero fields set to their defaults.
func (s WorldSettings) withDefaults() WorldSettings {
	if s.Width == 0 {
		s.Width = DefaultWidth
	}
	if s.Height == 0 {
		s.Height = DefaultHeight
	}
	if s.Cell == 0 {
		s.Cell = DefaultCell
	}
	if s.Speed == 0 {
		s.Speed = DefaultSpeed
	}
	if s.Tick == 0 {
		s.Tick = Duration(DefaultTick)
	}
	if s.Idle == 0 {
		s.Idle = Duration(DefaultIdle)
	}
	if s.Orbs == 0 {
		s.Orbs = DefaultOrbs
	}
	if s.OrbLife == 0 {
		s.OrbLife = Duration(DefaultOrbLife)
	}
	if s.Round == 0 {
		s.Round = Duration(DefaultRound)
	}
	return s
}

// Validate reports the first invalid field; zero fields are valid.
func (s WorldSettings) Validate() error {
	switch {
	case s.Width < 0, s.Height < 0:
		return fmt.Errorf("%w: width and height must be positive", ErrBadSettings)
	case s.Cell < 0:
		return fmt.Errorf("%w: cell must be positive", ErrBadSettings)
	case s.Speed < 0:
		return fmt.Errorf("%w: speed must be positive", ErrBadSettings)
	case s.Tick < 0 || (s.Tick > 0 && time.Duration(s.Tick) < time.Millisecond):
		return fmt.Errorf("%w: tick %v must be at least 1ms", ErrBadSettings, s.Tick)
	case s.Idle < 0:
		return fmt.Errorf("%w: idle must be positive", ErrBadSettings)
	case s.Orbs < 0 || s.Orbs > MaxOrbs:
		return fmt.Errorf("%w: orbs must be 0 to %d", ErrBadSettings, MaxOrbs)
	case s.OrbLife < 0:
		return fmt.Errorf("%w: orb_life must be positive", ErrBadSettings)
	case s.Round < 0 || (s.Round > 0 && time.Duration(s.Round) < 100*time.Millisecond):
		return fmt.Errorf("%w: round %v must be at least 100ms", ErrBadSettings, s.Round)
	case len(s.Spawn) != 0 && len(s.Spawn) != 2:
		return fmt.Errorf("%w: spawn must be [x, y]", ErrBadSettings)
	}
	d := s.withDefaults()
	if len(s.Spawn) == 2 && (s.Spawn[0] < 0 || s.Spawn[0] > d.Width || s.Spawn[1] < 0 || s.Spawn[1] > d.Height) {
		return fmt.Errorf("%w: spawn %v is outside the %vx%v room", ErrBadSettings, s.Spawn, d.Width, d.Height)
	}
	return nil
}
