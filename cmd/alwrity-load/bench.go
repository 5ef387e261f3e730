package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the benchmark's own schema

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// target is one server the load is sent to.
type target struct {
	name    string
	url     string   // the chat completions URL
	keys    []string // the bench users' alwrity keys (gateways only)
	cmd     *exec.Cmd
	client  *http.Client
	gateway bool
	dbURL   string // a gateway's database
	base    string
	admin   string
	ok      atomic.Int64 // 200 answers, each of which must be in the ledger
	failed  atomic.Int64
}

// result is one measured run.
type result struct {
	requests int64
	errors   int64
	elapsed  time.Duration
	cpu      time.Duration // the target process's CPU time during the run
	dbCPU    time.Duration // the PostgreSQL server's CPU time during the run, for a gateway on PostgreSQL
	lats     []time.Duration
}

func bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	duration := fs.Duration("duration", 3*time.Second, "measured time of each run")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unmeasured load before each run")
	rounds := fs.Int("rounds", 3, "alternated rounds over the targets")
	gatewayBin := fs.String("gateway-bin", "", "alwrity-billing binary (default: go build ./cmd/alwrity-billing)")
	pgURL := fs.String("postgres", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL URL for the gateway on PostgreSQL ('' skips it)")
	concs := fs.String("conc", "1,64", "connection counts")
	modes := fs.String("modes", "plain,stream", "plain and/or stream")
	noMeter := fs.Bool("nometer", true, "also run the gateway with a meter that does nothing (its own cost)")
	users := fs.Int("users", 1, "bench users the gateway calls are spread over (connection i uses user i mod N)")
	keep := fs.Bool("keep", false, "keep the working directory: the targets' logs (run with GODEBUG=gctrace=1 to see each collection) and databases")
	baselineBin := fs.String("baseline-bin", "", "a second alwrity-billing binary run as more targets (\"baseline gateway, …\") in the same rounds, to compare two builds")
	baselineLoad := fs.String("baseline-load-bin", "", "a second alwrity-load binary whose gateway-nometer runs as \"baseline gateway, no metering\" in the same rounds, to compare two builds of the gateway's own code")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "alwrity-load-")
	if err != nil {
		return err
	}
	if *keep {
		defer fmt.Printf("\nThe targets' logs and databases are in %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if *gatewayBin == "" {
		*gatewayBin = filepath.Join(tmp, "alwrity-billing")
		build := exec.Command("go", "build", "-o", *gatewayBin, "./cmd/alwrity-billing")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build alwrity-billing (run from the repository root): %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			if t.cmd != nil && t.cmd.Process != nil {
				t.cmd.Process.Kill()
				t.cmd.Wait()
			}
		}
	}()
	fake, err := startChild("direct", tmp, self, []string{"fake"}, nil)
	if err != nil {
		return err
	}
	targets = append(targets, fake)
	fakeBase := fake.base
	fake.url = fakeBase + "/v1/chat/completions"
	proxy, err := startChild("bare proxy", tmp, self, []string{"proxy", "-target", fakeBase}, nil)
	if err != nil {
		return err
	}
	proxy.url = proxy.base + "/v1/chat/completions"
	targets = append(targets, proxy)
	nometers := []struct{ name, bin string }{}
	if *noMeter {
		nometers = append(nometers, struct{ name, bin string }{"gateway, no metering", self})
	}
	if *baselineLoad != "" {
		nometers = append(nometers, struct{ name, bin string }{"baseline gateway, no metering", *baselineLoad})
	}
	for _, n := range nometers {
		nm, err := startChild(n.name, tmp, n.bin, []string{"gateway-nometer", "-target", fakeBase + "/v1"}, nil)
		if err != nil {
			return err
		}
		nm.url = nm.base + "/gateway/openai/v1/chat/completions"
		targets = append(targets, nm)
	}
	bins := []struct{ prefix, path string }{{"", *gatewayBin}}
	if *baselineBin != "" {
		bins = append(bins, struct{ prefix, path string }{"baseline ", *baselineBin})
	}
	for i, bin := range bins {
		dbs := []struct{ name, url string }{{"gateway, SQLite", "sqlite:///" + filepath.Join(tmp, fmt.Sprintf("bench-%d.db", i))}}
		if *pgURL != "" {
			u, drop, err := pgSchema(*pgURL)
			if err != nil {
				return err
			}
			defer drop()
			dbs = append(dbs, struct{ name, url string }{"gateway, PostgreSQL", u})
		}
		for _, db := range dbs {
			gw, err := startGateway(bin.prefix+db.name, tmp, bin.path, db.url, fakeBase, max(*users, 1))
			if err != nil {
				return err
			}
			targets = append(targets, gw)
		}
	}
	for _, t := range targets {
		tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, DisableCompression: true, IdleConnTimeout: time.Minute}
		t.client = &http.Client{Transport: tr, Timeout: time.Minute}
	}

	fmt.Printf("\n%d rounds × %s per run (after %s warm-up), targets alternated within each round; gateway calls spread over %d user(s)\n\n",
		*rounds, *duration, *warmup, max(*users, 1))
	fmt.Println("| mode | conns | target | req/s | × proxy | p50 ms | p99 ms | p50 − proxy (ms) | CPU µs/req | PostgreSQL CPU µs/req | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, mode := range strings.Split(*modes, ",") {
		for _, cs := range strings.Split(*concs, ",") {
			conc, err := strconv.Atoi(strings.TrimSpace(cs))
			if err != nil {
				return err
			}
			total := make([]result, len(targets))
			for range *rounds {
				for i, t := range targets {
					run(t, mode, conc, *warmup)
					r := run(t, mode, conc, *duration)
					total[i].requests += r.requests
					total[i].errors += r.errors
					total[i].elapsed += r.elapsed
					total[i].cpu += r.cpu
					total[i].dbCPU += r.dbCPU
					total[i].lats = append(total[i].lats, r.lats...)
				}
			}
			var proxyRate, proxyP50 float64
			for i, t := range targets {
				r := total[i]
				rate := float64(r.requests) / r.elapsed.Seconds()
				p50, p99 := pct(r.lats, 50), pct(r.lats, 99)
				if t.name == "bare proxy" {
					proxyRate, proxyP50 = rate, p50
				}
				ratio, delta := "", ""
				if proxyRate > 0 && t.name != "direct" {
					ratio = fmt.Sprintf("%.2f", rate/proxyRate)
					delta = fmt.Sprintf("%+.3f", p50-proxyP50)
				}
				cpu := float64(r.cpu.Microseconds()) / float64(max(r.requests, 1))
				dbCPU := ""
				if t.onPostgres() {
					dbCPU = fmt.Sprintf("%.0f", float64(r.dbCPU.Microseconds())/float64(max(r.requests, 1)))
				}
				fmt.Printf("| %s | %d | %s | %.0f | %s | %.3f | %.3f | %s | %.0f | %s | %d |\n", mode, conc, t.name, rate, ratio, p50, p99, delta, cpu, dbCPU, r.errors)
			}
		}
	}
	fmt.Println()
	fmt.Println("| target | peak RSS (MB) | RSS at end (MB) | 200 answers | ledger rows | missing |")
	fmt.Println("|---|---|---|---|---|---|")
	var details []string
	for _, t := range targets {
		hwm, rss := memory(t.cmd.Process.Pid)
		ledger, missing := "", ""
		if t.gateway {
			details = append(details, memoryDetail(t))
			// Calls are recorded after they are answered: the gateway is
			// stopped gracefully, which records every call it answered,
			// and its ledger is then read from the database.
			n, err := stopAndCount(t)
			if err != nil {
				return err
			}
			ledger, missing = strconv.FormatInt(n, 10), strconv.FormatInt(t.ok.Load()+t.failed.Load()-n, 10)
		}
		fmt.Printf("| %s | %.1f | %.1f | %d | %s | %s |\n", t.name, hwm, rss, t.ok.Load(), ledger, missing)
	}
	fmt.Println()
	fmt.Println("At the end of the load (MB): the resident set, anonymous and file-backed, and the Go runtime's view of it; and the mean number of usage events per ledger transaction over the whole run.")
	fmt.Println()
	fmt.Println("| target | RSS anon | RSS file | Go heap in use | Go stacks | Go runtime, not released | memory limit | events per ledger commit |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, d := range details {
		fmt.Println(d)
	}
	return nil
}

// memoryDetail reads where a gateway's memory is: its resident set from
// /proc and the Go runtime's statistics from its /metrics.
func memoryDetail(t *target) string {
	status := procStatus(t.cmd.Process.Pid)
	m := map[string]float64{}
	if resp, err := http.Get(t.base + "/metrics"); err == nil {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			name, value, ok := strings.Cut(sc.Text(), " ")
			if !ok || strings.HasPrefix(name, "#") {
				continue
			}
			if v, err := strconv.ParseFloat(value, 64); err == nil {
				m[name] = v
			}
		}
		resp.Body.Close()
	}
	mb := func(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }
	limit := "none"
	if l := m["go_gc_gomemlimit_bytes"]; l > 0 && l < 1<<60 {
		limit = mb(l)
	}
	perCommit := "" // a build without the meter's metrics
	if n := m["alwrity_ledger_commit_events_count"]; n > 0 {
		perCommit = fmt.Sprintf("%.1f", m["alwrity_ledger_commit_events_sum"]/n)
	}
	return fmt.Sprintf("| %s | %.1f | %.1f | %s | %s | %s | %s | %s |", t.name, status["RssAnon:"], status["RssFile:"],
		mb(m["go_memstats_heap_inuse_bytes"]), mb(m["go_memstats_stack_inuse_bytes"]),
		mb(m["go_memstats_sys_bytes"]-m["go_memstats_heap_released_bytes"]), limit, perCommit)
}

var (
	plainBody  = []byte(`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello"}]}`)
	streamBody = []byte(`{"model":"gpt-4o-mini","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`)
	doneEvent  = []byte("data: [DONE]\n\n")
)

// run sends calls over conc connections for d and measures them. A stream
// counts only when it arrived whole, [DONE] included.
func run(t *target, mode string, conc int, d time.Duration) result {
	body := plainBody
	if mode == "stream" {
		body = streamBody
	}
	cpu0 := cpuTime(t.cmd.Process.Pid)
	var db0 time.Duration
	if t.onPostgres() {
		db0 = postgresCPU()
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var res result
	for w := range conc {
		wg.Go(func() {
			key := ""
			if len(t.keys) > 0 {
				key = t.keys[w%len(t.keys)]
			}
			var lats []time.Duration
			var errs int64
			var buf bytes.Buffer
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				st := time.Now()
				resp, err := t.client.Do(req)
				if err != nil {
					errs++
					continue
				}
				buf.Reset()
				_, err = buf.ReadFrom(resp.Body)
				resp.Body.Close()
				lat := time.Since(st)
				switch {
				case err != nil || resp.StatusCode != http.StatusOK:
					errs++
					if t.gateway && resp.StatusCode >= 400 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
						t.failed.Add(1)
					}
				case mode == "stream" && !bytes.HasSuffix(buf.Bytes(), doneEvent):
					errs++ // cut short
					t.ok.Add(1)
				default:
					t.ok.Add(1)
					lats = append(lats, lat)
				}
			}
			mu.Lock()
			res.lats = append(res.lats, lats...)
			res.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.cpu = cpuTime(t.cmd.Process.Pid) - cpu0
	if t.onPostgres() {
		res.dbCPU = postgresCPU() - db0
	}
	res.requests = int64(len(res.lats))
	return res
}

func pct(lats []time.Duration, p int) float64 {
	if len(lats) == 0 {
		return 0
	}
	s := slices.Clone(lats)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return float64(s[i].Microseconds()) / 1000
}

// onPostgres reports whether t is a gateway on PostgreSQL.
func (t *target) onPostgres() bool {
	return t.gateway && (strings.HasPrefix(t.dbURL, "postgres://") || strings.HasPrefix(t.dbURL, "postgresql://"))
}

// cpuTime is a process's user plus system CPU time, from /proc.
func cpuTime(pid int) time.Duration {
	_, cpu := procCPU(fmt.Sprintf("/proc/%d/stat", pid))
	return cpu
}

// procCPU reads a /proc/PID/stat file: the command name and its user
// plus system CPU time.
func procCPU(path string) (string, time.Duration) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 > len(b) {
		return "", 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[end+2:]))
	if len(f) < 13 {
		return "", 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return string(b[open+1 : end]), time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// postgresCPU is the CPU time of every PostgreSQL process on this host (the
// server shares the machine with the load, so its backends' work is part of
// each call's cost). Backends that exit during a run take their time with
// them; the gateways keep their connections open.
func postgresCPU() time.Duration {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var total time.Duration
	for _, p := range paths {
		if name, cpu := procCPU(p); name == "postgres" {
			total += cpu
		}
	}
	return total
}

// memory returns a process's peak and current resident set, in MB.
func memory(pid int) (peak, now float64) {
	s := procStatus(pid)
	return s["VmHWM:"], s["VmRSS:"]
}

// procStatus returns the sizes /proc/PID/status reports, in MB, keyed by
// their field name ("VmRSS:" …).
func procStatus(pid int) map[string]float64 {
	out := map[string]float64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "kB" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = kb / 1024
		}
	}
	return out
}

// startChild starts a server process that prints "listening URL".
func startChild(name, dir, bin string, args, env []string) (*target, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start: %q %v", name, line, err)
	}
	go io.Copy(io.Discard, out)
	return &target{name: name, cmd: cmd, base: strings.TrimSpace(strings.TrimPrefix(line, "listening "))}, nil
}

// startGateway starts alwrity-billing on dbURL with its OpenAI upstream at
// upstream, and users bench-0 … bench-(users-1) on the unlimited Enterprise
// plan.
func startGateway(name, dir, bin, dbURL, upstream string, users int) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin := randomKey()
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "HOST=127.0.0.1", "PORT="+strconv.Itoa(port), "ALWRITY_ADMIN_KEY="+admin,
		"OPENAI_API_KEY=sk-bench-upstream", "ALWRITY_OPENAI_BASE_URL="+upstream+"/v1")
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	logf, err := os.Create(filepath.Join(dir, strings.NewReplacer(" ", "-", ",", "").Replace(name)+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &target{name: name, cmd: cmd, gateway: true, dbURL: dbURL, admin: admin, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	t.url = t.base + "/gateway/openai/v1/chat/completions"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(t.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("%s did not become ready (log in %s)", name, logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range users {
		user := "bench-" + strconv.Itoa(i)
		keys := exec.Command(bin, "keys", "create", "--user", user)
		keys.Env = env
		out, err := keys.Output()
		if err != nil {
			cmd.Process.Kill()
			return nil, fmt.Errorf("create the key of %s: %w", user, err)
		}
		t.keys = append(t.keys, strings.TrimSpace(string(out)))
		if err := t.subscribeEnterprise(user); err != nil {
			cmd.Process.Kill()
			return nil, err
		}
	}
	return t, nil
}

func (t *target) api(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, t.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+t.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

func (t *target) subscribeEnterprise(user string) error {
	var plans struct {
		Data struct {
			Plans []struct {
				ID   int64  `json:"id"`
				Name string `json:"name"`
			} `json:"plans"`
		} `json:"data"`
	}
	if err := t.api(http.MethodGet, "/api/subscription/plans", nil, &plans); err != nil {
		return err
	}
	for _, p := range plans.Data.Plans {
		if p.Name == "Enterprise" {
			var out any
			return t.api(http.MethodPost, "/api/subscription/subscribe/"+user, map[string]any{"plan_id": p.ID, "billing_cycle": "monthly"}, &out)
		}
	}
	return errors.New("no Enterprise plan")
}

// stopAndCount stops a gateway with SIGTERM, waits for it to exit, and
// counts the bench users' ledger rows in its database.
func stopAndCount(t *target) (int64, error) {
	if err := t.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("stop %s: %w", t.name, err)
	}
	if err := t.cmd.Wait(); err != nil {
		return 0, fmt.Errorf("%s did not stop cleanly: %w", t.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.Open(ctx, t.dbURL, nil)
	if err != nil {
		return 0, fmt.Errorf("open the database of %s: %w", t.name, err)
	}
	defer db.Close()
	var total int64
	for i := range t.keys {
		_, n, err := db.ListLogs(ctx, billing.LogFilter{UserID: "bench-" + strconv.Itoa(i), Limit: 1})
		if err != nil {
			return 0, fmt.Errorf("count the ledger of %s: %w", t.name, err)
		}
		total += n
	}
	return total, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "bench-admin-" + hex.EncodeToString(b[:])
}

// pgSchema creates a schema for one benchmark run and returns a URL that
// uses it, and a function that drops it.
func pgSchema(base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := "bench_" + hex.EncodeToString([]byte(randomKey()[12:18]))
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		db.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	}
	return u.String(), drop, nil
}
