package prom

import (
	"fmt"
	"html"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// The profiler's handlers. They follow net/http/pprof's URLs and
// formats, but live here because importing net/http/pprof registers its
// handlers on http.DefaultServeMux (in its init), which would expose the
// profiler on any server of the program that serves the default mux.
//
//	/debug/pprof/                 the index of the runtime's profiles
//	/debug/pprof/<name>?debug=N   a profile (goroutine, heap, allocs, block, mutex, threadcreate); ?gc=1 collects garbage before a heap profile
//	/debug/pprof/profile?seconds=N  a CPU profile (default 30 s)
//	/debug/pprof/trace?seconds=N    an execution trace (default 1 s)
//	/debug/pprof/cmdline          the command line

// maxProfileSeconds bounds a CPU profile or trace's duration.
const maxProfileSeconds = 300

// pprofIndex serves the index and the named profiles.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	name, _ := strings.CutPrefix(r.URL.Path, "/debug/pprof/")
	if name != "" {
		pprofNamed(w, r, name)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	b.WriteString("<html><head><title>/debug/pprof/</title></head><body>\n<p>Profiles:</p><table>\n")
	for _, p := range pprof.Profiles() {
		n := html.EscapeString(p.Name())
		fmt.Fprintf(&b, "<tr><td>%d</td><td><a href=\"%s?debug=1\">%s</a></td></tr>\n", p.Count(), n, n)
	}
	b.WriteString("<tr><td></td><td><a href=\"profile\">profile</a> (CPU, ?seconds=30)</td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"trace?seconds=1\">trace</a></td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"cmdline\">cmdline</a></td></tr>\n</table></body></html>\n")
	_, _ = w.Write([]byte(b.String()))
}

// pprofNamed serves the runtime profile name.
func pprofNamed(w http.ResponseWriter, r *http.Request, name string) {
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if name == "heap" && r.FormValue("gc") != "" {
		runtime.GC()
	}
	if debug != 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	_ = p.WriteTo(w, debug)
}

// seconds reads the seconds parameter, within 1..maxProfileSeconds.
func seconds(r *http.Request, def int) (time.Duration, error) {
	s := r.FormValue("seconds")
	if s == "" {
		return time.Duration(def) * time.Second, nil
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || n > maxProfileSeconds {
		return 0, fmt.Errorf("seconds=%q: want a number of seconds in (0, %d]", s, maxProfileSeconds)
	}
	return time.Duration(n * float64(time.Second)), nil
}

// wait sleeps for d or until the request is cancelled.
func wait(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// pprofProfile serves a CPU profile.
func pprofProfile(w http.ResponseWriter, r *http.Request) {
	d, err := seconds(r, 30)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	if err := pprof.StartCPUProfile(w); err != nil {
		w.Header().Del("Content-Disposition")
		http.Error(w, "cannot start a CPU profile: "+err.Error(), http.StatusInternalServerError)
		return
	}
	wait(r, d)
	pprof.StopCPUProfile()
}

// pprofTrace serves an execution trace.
func pprofTrace(w http.ResponseWriter, r *http.Request) {
	d, err := seconds(r, 1)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	if err := trace.Start(w); err != nil {
		w.Header().Del("Content-Disposition")
		http.Error(w, "cannot start a trace: "+err.Error(), http.StatusInternalServerError)
		return
	}
	wait(r, d)
	trace.Stop()
}

// pprofCmdline serves the command line, its arguments separated by NUL
// bytes.
func pprofCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(os.Args, "\x00")))
}
