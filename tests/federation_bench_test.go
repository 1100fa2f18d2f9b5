package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// The federation figures of issue 7 (docs/bench/federation.md): a remote
// join of a big room, one message fanned out to many servers, inbound
// /send throughput. They take minutes and the whole machine, so they run
// only with CHAPPE_FED_BENCH=1. They log their figures ("FEDBENCH ...")
// and assert only that the work was done, never how fast.
//
// Knobs: CHAPPE_FED_BENCH_MEMBERS / _STATE (big room: members and other
// state events), _SERVERS (fan-out), _PDUS (PDUs per /send run),
// _PROFILE (a directory for CPU and heap profiles).

func fedBench(t *testing.T) {
	t.Helper()
	if os.Getenv("CHAPPE_FED_BENCH") != "1" {
		t.Skip("federation benchmark: set CHAPPE_FED_BENCH=1")
	}
}

func benchInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv("CHAPPE_FED_BENCH_" + name)); err == nil && n > 0 {
		return n
	}
	return def
}

func benchCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// benchProfile starts a CPU profile named name when CHAPPE_FED_BENCH_PROFILE
// is set; the returned func stops it and writes a heap profile too.
func benchProfile(t *testing.T, name string) func() {
	dir := os.Getenv("CHAPPE_FED_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	cpu, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		t.Fatal(err)
	}
	// An execution trace shows the waits (database, bus) a CPU profile
	// does not: go tool trace -pprof=net|sync|syscall.
	var traceFile *os.File
	if os.Getenv("CHAPPE_FED_BENCH_TRACE") == "1" {
		if traceFile, err = os.Create(filepath.Join(dir, name+".trace")); err != nil {
			t.Fatal(err)
		}
		if err := trace.Start(traceFile); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = cpu.Close()
		if traceFile != nil {
			trace.Stop()
			_ = traceFile.Close()
		}
		heap, err := os.Create(filepath.Join(dir, name+".heap.pprof"))
		if err != nil {
			t.Fatal(err)
		}
		defer heap.Close()
		if err := pprof.Lookup("allocs").WriteTo(heap, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// loadAverage is /proc/loadavg's first three figures: the machine is
// shared, the figures mean little without it.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// memWatch samples the process's heap and RSS while something runs.
type memWatch struct {
	stopc    chan struct{}
	done     chan struct{}
	baseRSS  uint64
	baseHeap uint64
	peakHeap uint64
}

// memFigures is what a memWatch saw, in MiB.
type memFigures struct {
	BaseRSS, PeakRSS, AfterRSS    float64
	BaseHeap, PeakHeap, AfterHeap float64 // heap objects; After is after a GC
}

func (m memFigures) String() string {
	return fmt.Sprintf("RSS %.0f -> peak %.0f (after %.0f) MiB; heap %.0f -> peak %.0f -> live after GC %.0f MiB",
		m.BaseRSS, m.PeakRSS, m.AfterRSS, m.BaseHeap, m.PeakHeap, m.AfterHeap)
}

func startMemWatch() *memWatch {
	runtime.GC()
	debug.FreeOSMemory()
	// Resets VmHWM, the peak RSS, to the current RSS.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	m := &memWatch{stopc: make(chan struct{}), done: make(chan struct{}), baseRSS: procStatus("VmRSS"), baseHeap: heapObjects()}
	m.peakHeap = m.baseHeap
	go func() {
		defer close(m.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stopc:
				return
			case <-tick.C:
				m.peakHeap = max(m.peakHeap, heapObjects())
			}
		}
	}()
	return m
}

func (m *memWatch) stop() memFigures {
	close(m.stopc)
	<-m.done
	peakRSS := procStatus("VmHWM")
	runtime.GC()
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	return memFigures{
		BaseRSS: mib(m.baseRSS), PeakRSS: mib(peakRSS), AfterRSS: mib(procStatus("VmRSS")),
		BaseHeap: mib(m.baseHeap), PeakHeap: mib(m.peakHeap), AfterHeap: mib(heapObjects()),
	}
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// procStatus reads a "kB" line of /proc/self/status, in bytes.
func procStatus(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the CPU time this process used so far (user + system):
// on a shared machine, the CPU a piece of work costs says more than its
// wall time. A PostgreSQL or NATS server outside is not counted.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// chappeWithFakes starts one Chappe server federating with the fakes.
func chappeWithFakes(t *testing.T, fakes ...*fakeRemote) *testserver.Server {
	t.Helper()
	srv := testserver.NewFederationOf(t, testserver.FederationMember{Name: fedA, Options: []testserver.Option{fakeOptions(fakes...)}})[0]
	connectFakes(t, srv, fakes...)
	return srv
}

// 1. A local user joins, through a remote resident server, a room of
// 10,000 members and 100,000 state events: wall time of the client's
// /join and the memory of the process. CHAPPE_FED_BENCH_JOIN_SIZES lists
// the room sizes to try (state events; a tenth of them members).
func TestFederationBenchJoin(t *testing.T) {
	fedBench(t)
	sizes := os.Getenv("CHAPPE_FED_BENCH_JOIN_SIZES")
	if sizes == "" {
		sizes = "100000"
	}
	for _, field := range strings.Split(sizes, ",") {
		size, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || size < 100 {
			t.Fatalf("CHAPPE_FED_BENCH_JOIN_SIZES: %q", field)
		}
		t.Run(strconv.Itoa(size), func(t *testing.T) { benchJoin(t, size/10, size-size/10) })
	}
}

func benchJoin(t *testing.T, members, others int) {
	fake := newFakeRemote(t, "distant.test")
	room := fake.bigRoom(t, members, others)
	roomID := room.b.roomID
	t.Logf("room %s: %d state events, send_join answer %.1f MiB", roomID, members+others+5, float64(len(room.stateJSON)+len(room.chainJSON))/(1<<20))
	srv := chappeWithFakes(t, fake)
	cli := srv.RegisterUser(t, "arrivant")
	ctx := benchCtx(t, 10*time.Minute)

	watch := startMemWatch()
	stopProfile := benchProfile(t, fmt.Sprintf("join-%d-%s", members+others, dbKind()))
	load := loadAverage()
	cpu0 := cpuTime()
	start := time.Now()
	resp, err := cli.JoinRoom(ctx, roomID, &mautrix.ReqJoinRoom{Via: []string{fake.name}})
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	stopProfile()
	mem := watch.stop()
	since := func(at int64) time.Duration { return time.Unix(0, at).Sub(start).Round(time.Millisecond) }
	t.Logf("make_join at %s, send_join at %s, its answer written at %s, /join answered at %s",
		since(fake.makeJoinAt.Load()), since(fake.sendJoinAt.Load()), since(fake.answeredAt.Load()), elapsed.Round(time.Millisecond))
	line := fmt.Sprintf("FEDBENCH join members=%d state=%d db=%s time=%s cpu=%s load=[%s] %s", members, members+others+5, dbKind(),
		elapsed.Round(time.Millisecond), cpu.Round(time.Millisecond), load, mem)
	if err != nil {
		t.Fatalf("%s: join failed: %v", line, err)
	}
	if string(resp.RoomID) != roomID {
		t.Fatalf("joined %s, not %s", resp.RoomID, roomID)
	}
	start = time.Now()
	joined, err := cli.JoinedMembers(ctx, resp.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	membersTime := time.Since(start)
	if len(joined.Joined) != members+2 {
		t.Fatalf("%d joined members, want %d", len(joined.Joined), members+2)
	}
	start = time.Now()
	sync, err := cli.SyncRequest(ctx, 0, "", "", true, "")
	if err != nil {
		t.Fatal(err)
	}
	syncTime := time.Since(start)
	if _, ok := sync.Rooms.Join[resp.RoomID]; !ok {
		t.Fatal("the joined room is not in the initial sync")
	}
	t.Logf("%s; joined_members %s; initial sync %s; transactions sent to the resident %d", line,
		membersTime.Round(time.Millisecond), syncTime.Round(time.Millisecond), fake.received.Load())
}

func dbKind() string {
	if os.Getenv("CHAPPE_TEST_POSTGRES") != "" {
		return "postgres+nats"
	}
	return "sqlite"
}

// 2. One message fanned out to 20 other servers: time from the send on
// the first server until each other server's user sees it in /sync.
func TestFederationBenchFanout(t *testing.T) {
	fedBench(t)
	n := benchInt("SERVERS", 21)
	rounds := benchInt("ROUNDS", 5)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ministere-%02d.test", i)
	}
	// On PostgreSQL each server holds up to max_open_conns connections:
	// a few each, so that many servers stay under max_connections.
	conns := benchInt("PG_CONNS", 3)
	members := make([]testserver.FederationMember, n)
	for i, name := range names {
		members[i] = testserver.FederationMember{Name: name, Options: []testserver.Option{func(c *config.Config) {
			if c.Database.URL != "" {
				c.Database.MaxOpenConns = conns
			}
		}}}
	}
	start := time.Now()
	srvs := testserver.NewFederationOf(t, members...)
	t.Logf("%d servers started in %s (RSS %.0f MiB)", n, time.Since(start).Round(time.Millisecond), float64(procStatus("VmRSS"))/(1<<20))
	ctx := benchCtx(t, 20*time.Minute)
	users := make([]*fedUser, n)
	for i, s := range srvs {
		users[i] = newFedUser(t, s, fmt.Sprintf("agent%02d", i))
	}
	owner := users[0]
	created, err := owner.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Diffusion"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	var joins []time.Duration
	for _, u := range users[1:] {
		t0 := time.Now()
		u.join(ctx, string(roomID), names[0])
		joins = append(joins, time.Since(t0))
	}
	slices.Sort(joins)
	t.Logf("FEDBENCH fanout-joins servers=%d p50=%s max=%s", n, percentile(joins, 0.5).Round(time.Millisecond), joins[len(joins)-1].Round(time.Millisecond))
	// Everyone has the room up to here before anything is measured.
	owner.send(ctx, roomID, "prêt")
	for _, u := range users[1:] {
		u.waitText(roomID, "prêt")
	}

	var all []time.Duration
	load := loadAverage()
	stopProfile := benchProfile(t, "fanout")
	var echoes []time.Duration // the sender's own /sync: the local part of the way
	for r := range rounds {
		body := fmt.Sprintf("mesure %d", r)
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		t0 := time.Now()
		for i, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !u.hasText(roomID, body) {
					if err := u.sync(ctx); err != nil {
						t.Errorf("sync of %s: %v", u.id(), err)
						return
					}
				}
				lat[i] = time.Since(t0)
			}()
		}
		owner.send(ctx, roomID, body)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		echoes = append(echoes, lat[0])
		remote := lat[1:]
		slices.Sort(remote)
		t.Logf("round %d: sender's own sync %s; others p50 %s max %s", r, lat[0].Round(time.Millisecond),
			percentile(remote, 0.5).Round(time.Millisecond), remote[len(remote)-1].Round(time.Millisecond))
		all = append(all, remote...)
	}
	stopProfile()
	slices.Sort(all)
	slices.Sort(echoes)
	t.Logf("FEDBENCH fanout servers=%d db=%s rounds=%d p50=%s p90=%s max=%s (sender's own sync p50=%s) load=[%s] RSS=%.0fMiB", n, dbKind(), rounds,
		percentile(all, 0.5).Round(time.Millisecond), percentile(all, 0.9).Round(time.Millisecond), all[len(all)-1].Round(time.Millisecond),
		percentile(echoes, 0.5).Round(time.Millisecond), load, float64(procStatus("VmRSS"))/(1<<20))
}

// inboundRun is one room's share of a /send run: transactions prepared
// before the clock starts.
type inboundRun struct {
	fake   *fakeRemote
	roomID string
	txns   [][]json.RawMessage
	last   string // the last message's event ID
}

// 3. Inbound /send throughput: remote servers send transactions of 50
// messages as fast as Chappe answers them, one at a time, then several
// rooms at once (of one origin, and of several origins).
func TestFederationBenchInbound(t *testing.T) {
	fedBench(t)
	pdus := benchInt("PDUS", 5000)
	const parallel = 4
	fakes := make([]*fakeRemote, parallel)
	for i := range fakes {
		fakes[i] = newFakeRemote(t, fmt.Sprintf("distant-%d.test", i+1))
	}
	// Rooms: one for the sequential run, parallel more of fakes[0] for
	// the one-origin run, one per fake for the several-origins run.
	var rooms []*fakeRoom
	for range 1 + parallel {
		rooms = append(rooms, fakes[0].smallRoom(t))
	}
	for _, f := range fakes {
		rooms = append(rooms, f.smallRoom(t))
	}
	srv := chappeWithFakes(t, fakes...)
	reader := srv.RegisterUser(t, "lecteur")
	ctx := benchCtx(t, 20*time.Minute)
	for _, r := range rooms {
		if _, err := reader.JoinRoom(ctx, r.b.roomID, &mautrix.ReqJoinRoom{Via: []string{r.b.origin}}); err != nil {
			t.Fatalf("join %s: %v", r.b.roomID, err)
		}
	}
	fakeOf := map[string]*fakeRemote{}
	for _, f := range fakes {
		fakeOf[f.name] = f
	}
	prepare := func(r *fakeRoom, count int) *inboundRun {
		run := &inboundRun{fake: fakeOf[r.b.origin], roomID: r.b.roomID}
		var txn []json.RawMessage
		for i := range count {
			ev, err := r.b.message(fmt.Sprintf("message %d", i))
			if err != nil {
				t.Fatal(err)
			}
			txn = append(txn, ev.JSON())
			run.last = ev.EventID()
			if len(txn) == 50 {
				run.txns, txn = append(run.txns, txn), nil
			}
		}
		if len(txn) > 0 {
			run.txns = append(run.txns, txn)
		}
		return run
	}
	start := time.Now()
	seq := []*inboundRun{prepare(rooms[0], pdus)}
	var oneOrigin, manyOrigins []*inboundRun
	for _, r := range rooms[1 : 1+parallel] {
		oneOrigin = append(oneOrigin, prepare(r, pdus/parallel))
	}
	for _, r := range rooms[1+parallel:] {
		manyOrigins = append(manyOrigins, prepare(r, pdus/parallel))
	}
	t.Logf("%d transactions signed in %s", len(seq[0].txns)+2*parallel*len(oneOrigin[0].txns), time.Since(start).Round(time.Millisecond))

	for _, c := range []struct {
		name string
		runs []*inboundRun
	}{{"sequential", seq}, {"one-origin-4-rooms", oneOrigin}, {"4-origins", manyOrigins}} {
		runtime.GC()
		load := loadAverage()
		stopProfile := benchProfile(t, "send-"+c.name+"-"+dbKind())
		cpu0 := cpuTime()
		total, elapsed, lat := sendRuns(t, ctx, c.name, c.runs)
		cpu := cpuTime() - cpu0
		stopProfile()
		for _, run := range c.runs {
			if _, err := reader.GetEvent(ctx, id.RoomID(run.roomID), id.EventID(run.last)); err != nil {
				t.Fatalf("%s: the last message of %s is not there: %v", c.name, run.roomID, err)
			}
		}
		slices.Sort(lat)
		// The process's CPU per PDU includes signing and sending on the
		// fake's side (a small share) and what ROOM_OUTPUT's consumers did
		// meanwhile.
		t.Logf("FEDBENCH send %s db=%s pdus=%d time=%s rate=%.0f PDUs/s txn p50=%s max=%s cpu=%s (%.2f ms/PDU) load=[%s]", c.name, dbKind(), total,
			elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(),
			percentile(lat, 0.5).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond),
			cpu.Round(time.Millisecond), float64(cpu.Microseconds())/1000/float64(total), load)
	}
}

// sendRuns sends each run's transactions in order, the runs at the same
// time, and checks every PDU was accepted.
func sendRuns(t *testing.T, ctx context.Context, name string, runs []*inboundRun) (total int, elapsed time.Duration, latencies []time.Duration) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, txn := range run.txns {
				t0 := time.Now()
				errs, err := run.fake.sendTxn(ctx, fmt.Sprintf("%s-%d-%d-%d", name, start.UnixNano(), i, j), txn)
				d := time.Since(t0)
				if err == nil && len(errs) > 0 {
					err = fmt.Errorf("%d PDUs refused, e.g. %v", len(errs), errs)
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				mu.Lock()
				latencies = append(latencies, d)
				total += len(txn)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed = time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	return total, elapsed, latencies
}
