package arena

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of WorldSettings.
const (
	DefaultWidth  = 2000
	DefaultHeight = 2000
	DefaultCell   = 250
	DefaultSpeed  = 200
	DefaultTick   = time.Second / 15
	DefaultIdle   = 30 * time.Second
)

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
//	  world: {tick: 50ms, cell: 250, speed: 200, idle: 30s}
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
	// without it a player starts at a random point of the room.
	Spawn []float64 `yaml:"spawn" json:"spawn"`
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
	case len(s.Spawn) != 0 && len(s.Spawn) != 2:
		return fmt.Errorf("%w: spawn must be [x, y]", ErrBadSettings)
	}
	d := s.withDefaults()
	if len(s.Spawn) == 2 && (s.Spawn[0] < 0 || s.Spawn[0] > d.Width || s.Spawn[1] < 0 || s.Spawn[1] > d.Height) {
		return fmt.Errorf("%w: spawn %v is outside the %vx%v room", ErrBadSettings, s.Spawn, d.Width, d.Height)
	}
	return nil
}
