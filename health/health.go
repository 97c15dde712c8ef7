// Package health is the daemon's readiness registry. Components (the Asterisk client,
// the catalog, the delivery queue, Redis) report whether the dependency they own is
// usable, either by pushing their state (Set) or by registering a check function that is
// run when readiness is asked. The registry serves /healthz (liveness: the process
// serves HTTP) and /readyz (200 only when every required dependency is ready, else 503
// with a JSON object naming each missing dependency and why), and exports
// omlcrm_dependency_up for alerting.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Registry holds the named dependencies. It is safe for concurrent use.
type Registry struct {
	log          zerolog.Logger
	now          func() time.Time
	checkTimeout time.Duration

	mu   sync.Mutex
	deps map[string]*dependency
}

type dependency struct {
	required bool
	known    bool // a state was reported or checked at least once
	ok       bool
	detail   string
	since    time.Time // of the last change of ok
	check    func(ctx context.Context) error
}

// Option configures a Registry.
type Option func(*Registry)

// WithLogger logs every change of a dependency's state (not ready: warn, ready: info).
func WithLogger(l zerolog.Logger) Option { return func(r *Registry) { r.log = l } }

// WithCheckTimeout bounds each check function run by a readiness request (default 2s).
func WithCheckTimeout(d time.Duration) Option { return func(r *Registry) { r.checkTimeout = d } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(r *Registry) { r.now = now } }

// New returns an empty registry: ready until something is required.
func New(opts ...Option) *Registry {
	r := &Registry{log: zerolog.Nop(), now: time.Now, checkTimeout: 2 * time.Second, deps: map[string]*dependency{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// notChecked is the detail of a declared dependency that has not reported yet.
const notChecked = "not checked yet"

// Require declares a required dependency: the daemon is not ready until it reports
// ready. Declare dependencies at start-up, before connecting, so that /readyz names them
// while they are still being reached.
func (r *Registry) Require(name string) { r.declare(name, true) }

// Optional declares a dependency that is reported (/readyz?verbose, metrics) but never
// makes the daemon unready.
func (r *Registry) Optional(name string) { r.declare(name, false) }

func (r *Registry) declare(name string, required bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.deps[name]; ok {
		d.required = required
		return
	}
	r.deps[name] = &dependency{required: required, detail: notChecked, since: r.now()}
}

// Set reports a dependency's state; an undeclared name is declared required. The detail
// says why it is not ready (an error message) and must not hold secrets; passwords in
// URLs and DSNs are masked anyway.
func (r *Registry) Set(name string, ok bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, found := r.deps[name]
	if !found {
		d = &dependency{required: true}
		r.deps[name] = d
	}
	r.update(name, d, ok, detail)
}

// SetError reports err == nil as ready, else not ready with err's message.
func (r *Registry) SetError(name string, err error) {
	if err == nil {
		r.Set(name, true, "")
		return
	}
	r.Set(name, false, err.Error())
}

// Check registers a required dependency whose state is found by running fn (with the
// registry's check timeout) each time readiness is asked: for dependencies that have no
// long-lived connection to watch, such as a database pool.
func (r *Registry) Check(name string, fn func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, found := r.deps[name]
	if !found {
		d = &dependency{required: true, detail: notChecked, since: r.now()}
		r.deps[name] = d
	}
	d.check = fn
}

// Remove forgets a dependency (a component that was switched off by a reload).
func (r *Registry) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.deps, name)
}

// update must be called with r.mu held.
func (r *Registry) update(name string, d *dependency, ok bool, detail string) {
	if ok {
		detail = ""
	} else {
		detail = redact(detail)
		if detail == "" {
			detail = "not ready"
		}
	}
	changed := !d.known || d.ok != ok
	d.known, d.ok, d.detail = true, ok, detail
	if !changed {
		return
	}
	d.since = r.now()
	if ok {
		r.log.Info().Str("dependency", name).Msg("dependency ready")
	} else {
		r.log.Warn().Str("dependency", name).Str("detail", detail).Bool("required", d.required).Msg("dependency not ready")
	}
}

// DependencyStatus is one dependency's state.
type DependencyStatus struct {
	OK       bool      `json:"ok"`
	Required bool      `json:"required"`
	Detail   string    `json:"detail,omitempty"`
	Since    time.Time `json:"since"`
}

// Status is the whole registry's state.
type Status struct {
	Ready        bool                        `json:"ready"`
	Dependencies map[string]DependencyStatus `json:"dependencies"`
}

// Missing returns the required dependencies that are not ready, name → why.
func (s Status) Missing() map[string]string {
	out := map[string]string{}
	for name, d := range s.Dependencies {
		if d.Required && !d.OK {
			out[name] = d.Detail
		}
	}
	return out
}

// Status runs the check functions (concurrently, each bounded by the check timeout and
// ctx) and returns every dependency's state.
func (r *Registry) Status(ctx context.Context) Status {
	r.runChecks(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Ready: true, Dependencies: make(map[string]DependencyStatus, len(r.deps))}
	for name, d := range r.deps {
		s.Dependencies[name] = DependencyStatus{OK: d.ok, Required: d.required, Detail: d.detail, Since: d.since}
		if d.required && !d.ok {
			s.Ready = false
		}
	}
	return s
}

func (r *Registry) runChecks(ctx context.Context) {
	r.mu.Lock()
	checks := map[string]func(context.Context) error{}
	for name, d := range r.deps {
		if d.check != nil {
			checks[name] = d.check
		}
	}
	r.mu.Unlock()
	if len(checks) == 0 {
		return
	}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for name, fn := range checks {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, r.checkTimeout)
			defer cancel()
			results <- result{name, runCheck(cctx, fn)}
		}()
	}
	for range checks {
		res := <-results
		r.mu.Lock()
		if d, ok := r.deps[res.name]; ok { // it may have been removed meanwhile
			if res.err == nil {
				r.update(res.name, d, true, "")
			} else {
				r.update(res.name, d, false, res.err.Error())
			}
		}
		r.mu.Unlock()
	}
}

// runCheck returns when fn does or when ctx ends, whichever is first: a check that
// ignores its context cannot hang a readiness probe. The goroutine of such a check ends
// when the check itself returns.
func runCheck(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LivenessHandler answers 200 "ok" to every request: if it answers, the process serves.
func (r *Registry) LivenessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// ReadinessHandler answers 200 when every required dependency is ready, else 503. The
// body is a JSON object of the missing required dependencies, name → why
// ({} when ready). With ?verbose it is the whole Status instead.
func (r *Registry) ReadinessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s := r.Status(req.Context())
		code := http.StatusOK
		if !s.Ready {
			code = http.StatusServiceUnavailable
		}
		var body any = s.Missing()
		if _, verbose := req.URL.Query()["verbose"]; verbose {
			body = s
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
	})
}

var upDesc = prometheus.NewDesc("omlcrm_dependency_up",
	"1 when the dependency is ready, 0 when not (required: 1 when the daemon is unready without it).",
	[]string{"dependency", "required"}, nil)

// Describe implements prometheus.Collector.
func (r *Registry) Describe(ch chan<- *prometheus.Desc) { ch <- upDesc }

// Collect implements prometheus.Collector. It reports the last known states; it does not
// run the check functions (a scrape must not hit the database), so a Check-only
// dependency shows its state as of the last readiness request.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.deps))
	for n := range r.deps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := r.deps[n]
		v := 0.0
		if d.ok {
			v = 1
		}
		req := "false"
		if d.required {
			req = "true"
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, v, n, req)
	}
}

var (
	// scheme://user:password@host → scheme://user:xxxxx@host
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@/\s]+@`)
	// password=secret (libpq key/value DSNs), password: secret
	kvPassword = regexp.MustCompile(`(?i)\b(password|passwd|secret|token)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;]+)`)
)

// redact masks passwords that an error message may carry (connection strings).
func redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}:xxxxx@")
	return kvPassword.ReplaceAllString(s, "${1}${2}xxxxx")
}
