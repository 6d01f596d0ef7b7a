package table

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	// DefaultMaxFileSize bounds one table file: 64 MiB.
	DefaultMaxFileSize = 64 << 20
	// DefaultMaxErrors is how many problems a failed load reports.
	DefaultMaxErrors = 20
)

// Config configures a Set.
type Config struct {
	// Name names the set in logs, errors and status ("loot"): letters,
	// digits, '-', '_' and '.'. Required.
	Name string
	// Dir is the directory the set's files are relative to. Required.
	Dir string
	// MaxFileSize bounds the bytes of one file; a larger one fails the
	// load. Default DefaultMaxFileSize.
	MaxFileSize int64
	// MaxErrors is how many problems a failed load reports at most.
	// Default DefaultMaxErrors.
	MaxErrors int
	// Logger receives a line for every reload: one that publishes a
	// snapshot or finds the files unchanged (Info), one that fails
	// (Error). Default slog.Default().
	Logger *slog.Logger
}

// Version says which files a snapshot was loaded from, and when.
type Version struct {
	// Hash is the first 12 hex digits of the SHA-256 over the set's files
	// (each file's name, length and bytes, in the set type's field
	// order). Empty: nothing loaded.
	Hash string `json:"hash"`
	// Loaded is when the snapshot was published.
	Loaded time.Time `json:"loaded"`
}

// String returns the hash, or "none".
func (v Version) String() string {
	if v.Hash == "" {
		return "none"
	}
	return v.Hash
}

// TableStatus is one table of a loaded snapshot.
type TableStatus struct {
	// File is the table's file, relative to the set's directory.
	File string `json:"file"`
	// Rows is the number of rows loaded.
	Rows int `json:"rows"`
	// Hash is the first 12 hex digits of the SHA-256 of the file.
	Hash string `json:"hash"`
}

// Status is what a set reports: the version it serves and how its
// reloads went.
type Status struct {
	// Set is the set's name.
	Set string `json:"set"`
	// Dir is its directory.
	Dir string `json:"dir"`
	// Version is the snapshot served (Hash empty before the first load).
	Version Version `json:"version"`
	// Tables are the snapshot's tables, in field order.
	Tables []TableStatus `json:"tables"`
	// Loads counts the loads that published a new snapshot; Unchanged
	// the reloads whose files hashed as the snapshot's (nothing done);
	// Failures the reloads that failed (the old snapshot stayed).
	Loads     uint64 `json:"loads"`
	Unchanged uint64 `json:"unchanged"`
	Failures  uint64 `json:"failures"`
	// LastError is the error of the last reload when it failed, and
	// LastErrorAt when; empty once a later reload succeeds.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Set is a table set: the snapshot of a set type T (a struct of Table
// fields), replaced as a whole by each successful reload. Create it with
// NewSet or Open. Its methods are safe for concurrent use.
type Set[T any] struct {
	m   *member
	cur atomic.Pointer[loaded[T]]
	// tables are T's Table fields: their index, file, format and plan.
	tables []tableSpec
}

// tableSpec is one Table field of a set type.
type tableSpec struct {
	field  int
	file   string // relative to the set's directory, slash-separated
	format format
	plan   *structPlan
	plans  map[reflect.Type]*structPlan
}

// loaded is a published snapshot.
type loaded[T any] struct {
	value   *T
	version Version
	tables  []TableStatus
}

// member is the part of a set that does not depend on T: what a Group
// holds and watches.
type member struct {
	cfg   Config
	files []string // absolute paths, in field order
	// reload reloads the set; trigger says why, for the log.
	reload func(ctx context.Context, trigger string) (Version, error)
	status func() Status
	// seen is the files' fingerprint when the set was first loaded, for
	// the watcher.
	seen atomic.Pointer[string]

	// sem lets one reload of the set run at a time (a one-slot
	// semaphore, taken with the reload's ctx): the files read last are
	// the files published last. It is held across the reads and the
	// Validate hooks (user code), by design; a Validate must not reload
	// its own set.
	sem       chan struct{}
	loads     atomic.Uint64
	unchanged atomic.Uint64
	failures  atomic.Uint64
	lastErr   atomic.Pointer[failure]
}

type failure struct {
	err string
	at  time.Time
}

// Member is a set that a Group holds: a *Set[T] of any T. Only this
// package implements it.
type Member interface{ member() *member }

func (s *Set[T]) member() *member { return s.m }

// setValidator is a set type's check across its tables.
type setValidator interface{ Validate() error }

// NewSet checks the set type T and returns its Set, with nothing loaded
// yet: Reload loads it. T must be a struct whose exported fields
// include at least one Table, each tagged with its file:
// `table:"items.csv"` (a path relative to Config.Dir; its extension,
// .json, .yaml, .yml or .csv, is its format). Its row type must be a
// struct with a key field of the Table's key type (see the package doc).
// A problem with T is an error here, not at load time.
func NewSet[T any](cfg Config) (*Set[T], error) {
	if err := checkName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("table: set %s: Config.Dir is empty", cfg.Name)
	}
	if cfg.MaxFileSize < 0 || cfg.MaxErrors < 0 {
		return nil, fmt.Errorf("table: set %s: Config.MaxFileSize and MaxErrors may not be negative", cfg.Name)
	}
	if cfg.MaxFileSize == 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.MaxErrors == 0 {
		cfg.MaxErrors = DefaultMaxErrors
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("table: set %s: %w", cfg.Name, err)
	}
	cfg.Dir = dir
	s := &Set[T]{m: &member{cfg: cfg, sem: make(chan struct{}, 1)}}
	if err := s.inspect(); err != nil {
		return nil, fmt.Errorf("table: set %s: %w", cfg.Name, err)
	}
	s.m.reload = s.reload
	s.m.status = s.Status
	return s, nil
}

// checkName checks a set's name.
func checkName(name string) error {
	if name == "" {
		return errors.New("table: Config.Name is empty")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("table: set name %q: use letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// inspect finds T's Table fields and makes their plans.
func (s *Set[T]) inspect() error {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("the set type %s is not a struct of Table fields", t)
	}
	zero := reflect.New(t).Elem()
	seen := make(map[string]string)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tf, ok := zero.Field(i).Addr().Interface().(tableField)
		if !ok {
			continue // a field of the set's own (Validate may fill it)
		}
		file, _, _ := strings.Cut(f.Tag.Get("table"), ",")
		if file == "" {
			return fmt.Errorf("%s.%s: a Table field needs its file: `table:\"%s.csv\"`", t, f.Name, strings.ToLower(f.Name))
		}
		file = filepath.ToSlash(filepath.Clean(file))
		if filepath.IsAbs(file) || file == ".." || strings.HasPrefix(file, "../") {
			return fmt.Errorf("%s.%s: the file %q is not inside the set's directory", t, f.Name, file)
		}
		if other, dup := seen[file]; dup {
			return fmt.Errorf("%s.%s: the file %s is also %s's", t, f.Name, file, other)
		}
		seen[file] = f.Name
		fm, ok := formatOf(file)
		if !ok {
			return fmt.Errorf("%s.%s: the file %s is not .json, .yaml, .yml or .csv", t, f.Name, file)
		}
		key, row := tf.types()
		p := &planner{plans: make(map[reflect.Type]*structPlan), csv: fm == formatCSV}
		plan, err := p.rowPlan(row, key)
		if err != nil {
			return fmt.Errorf("%s.%s (%s): %w", t, f.Name, file, err)
		}
		s.tables = append(s.tables, tableSpec{field: i, file: file, format: fm, plan: plan, plans: p.plans})
		s.m.files = append(s.m.files, filepath.Join(s.m.cfg.Dir, filepath.FromSlash(file)))
	}
	if len(s.tables) == 0 {
		return fmt.Errorf("the set type %s has no Table field", t)
	}
	return nil
}

// Name returns the set's name.
func (s *Set[T]) Name() string { return s.m.cfg.Name }

// Load returns the current snapshot, or nil before the first successful
// load. The snapshot is never modified: a reload publishes a new one.
// Call it once per message and use what it returned for the whole
// message (see the package doc).
func (s *Set[T]) Load() *T {
	if l := s.cur.Load(); l != nil {
		return l.value
	}
	return nil
}

// Snapshot returns the current snapshot with its version (nil and the
// zero Version before the first load).
func (s *Set[T]) Snapshot() (*T, Version) {
	if l := s.cur.Load(); l != nil {
		return l.value, l.version
	}
	return nil, Version{}
}

// Version returns the version of the current snapshot.
func (s *Set[T]) Version() Version {
	_, v := s.Snapshot()
	return v
}

// Reload reads the set's files and, when they differ from the current
// snapshot's, parses and validates them and publishes the new snapshot;
// it returns the version served afterwards. When anything fails, the
// current snapshot stays, the failure is counted and logged, and the
// error (every problem found, up to Config.MaxErrors, each an *Error
// matching ErrInvalid, naming its file, line and field) is returned.
// Reloads of one set run one at a time: a Reload waits for the one in
// progress, up to ctx's end (then it fails with ctx's error).
func (s *Set[T]) Reload(ctx context.Context) (Version, error) {
	return s.reload(ctx, "call")
}

// read is a file read for a load.
type read struct {
	data []byte
	hash string
}

func (s *Set[T]) reload(ctx context.Context, trigger string) (Version, error) {
	m := s.m
	log := m.cfg.Logger
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	case <-ctx.Done():
		err := fmt.Errorf("table set %s: waiting for the reload in progress: %w", m.cfg.Name, ctx.Err())
		m.failures.Add(1)
		m.lastErr.Store(&failure{err: err.Error(), at: time.Now()})
		log.Error("table set reload failed: the old one stays", "set", m.cfg.Name, "version", s.Version().String(), "trigger", trigger, "err", err)
		return s.Version(), err
	}
	fail := func(err error) (Version, error) {
		m.failures.Add(1)
		m.lastErr.Store(&failure{err: err.Error(), at: time.Now()})
		log.Error("table set reload failed: the old one stays", "set", m.cfg.Name, "version", s.Version().String(), "trigger", trigger, "err", err)
		return s.Version(), err
	}
	reads, hash, err := s.read(ctx)
	if err != nil {
		return fail(err)
	}
	if cur := s.cur.Load(); cur != nil && cur.version.Hash == hash {
		m.unchanged.Add(1)
		m.lastErr.Store(nil)
		log.Info("table set unchanged", "set", m.cfg.Name, "version", hash, "trigger", trigger)
		return cur.version, nil
	}
	value, tables, err := s.build(reads)
	if err != nil {
		return fail(err)
	}
	next := &loaded[T]{value: value, tables: tables, version: Version{Hash: hash, Loaded: time.Now()}}
	prev := s.cur.Swap(next) // the one store readers see: all old, or all new
	m.loads.Add(1)
	m.lastErr.Store(nil)
	attrs := []any{"set", m.cfg.Name, "version", hash, "previous", "none", "trigger", trigger}
	if prev != nil {
		attrs[5] = prev.version.Hash
	}
	for _, t := range tables {
		attrs = append(attrs, t.File, t.Rows)
	}
	log.Info("table set loaded", attrs...)
	return next.version, nil
}

// read reads every file of the set, within the size bound, and hashes
// them.
func (s *Set[T]) read(ctx context.Context) ([]read, string, error) {
	reads := make([]read, len(s.tables))
	sum := sha256.New()
	for i, t := range s.tables {
		if err := ctx.Err(); err != nil {
			return nil, "", fmt.Errorf("table set %s: %w", s.m.cfg.Name, err)
		}
		data, err := readFile(s.m.files[i], s.m.cfg.MaxFileSize)
		if err != nil {
			return nil, "", fmt.Errorf("table set %s: %s: %w", s.m.cfg.Name, t.file, err)
		}
		h := sha256.Sum256(data)
		reads[i] = read{data: data, hash: hex.EncodeToString(h[:6])}
		sum.Write([]byte(t.file))
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(data)))
		sum.Write(n[:])
		sum.Write(data)
	}
	return reads, hex.EncodeToString(sum.Sum(nil)[:6]), nil
}

// readFile reads a file of at most max bytes.
func readFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes (Config.MaxFileSize)", max)
	}
	return data, nil
}

// build parses and validates a new snapshot.
func (s *Set[T]) build(reads []read) (*T, []TableStatus, error) {
	value := new(T)
	rv := reflect.ValueOf(value).Elem()
	var errs []error
	tables := make([]TableStatus, len(s.tables))
	for i, t := range s.tables {
		d := &decoder{file: t.file, csv: t.format == formatCSV, plans: t.plans, max: s.m.cfg.MaxErrors - len(errs)}
		if d.max <= 0 {
			break
		}
		tf := rv.Field(t.field).Addr().Interface().(tableField)
		tf.load(d, t.plan, reads[i].data, t.format, reads[i].hash)
		errs = append(errs, d.errs...)
		tables[i] = TableStatus{File: t.file, Rows: tf.rowCount(), Hash: reads[i].hash}
	}
	if len(errs) == 0 {
		if v, ok := any(value).(setValidator); ok {
			if err := safeValidate(v); err != nil {
				errs = append(errs, &checkError{err})
			}
		}
	}
	if len(errs) > 0 {
		for _, err := range errs {
			var pe *panicError
			if errors.As(err, &pe) {
				s.m.cfg.Logger.Error("table set: a Validate panicked", "set", s.m.cfg.Name, "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
			}
		}
		return nil, nil, fmt.Errorf("table set %s:\n%w", s.m.cfg.Name, errors.Join(errs...))
	}
	return value, tables, nil
}

// Status returns the set's status.
func (s *Set[T]) Status() Status {
	m := s.m
	st := Status{
		Set: m.cfg.Name, Dir: m.cfg.Dir,
		Loads: m.loads.Load(), Unchanged: m.unchanged.Load(), Failures: m.failures.Load(),
	}
	if l := s.cur.Load(); l != nil {
		st.Version = l.version
		st.Tables = append([]TableStatus(nil), l.tables...)
	}
	if f := m.lastErr.Load(); f != nil {
		st.LastError, st.LastErrorAt = f.err, f.at
	}
	return st
}

// checkError is the error of a set type's Validate.
type checkError struct{ err error }

func (e *checkError) Error() string        { return "Validate: " + e.err.Error() }
func (e *checkError) Unwrap() error        { return e.err }
func (e *checkError) Is(target error) bool { return target == ErrInvalid }
