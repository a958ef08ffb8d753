package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivo/uniseg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/matrices"
)

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestResolveProgress(t *testing.T) {
	cases := []struct {
		mode     string
		env      map[string]string
		terminal bool
		want     string
	}{
		{"auto", nil, true, "tty"},
		{"auto", map[string]string{"TERM": "xterm-256color"}, true, "tty"},
		{"auto", map[string]string{"CI": "true"}, true, "plain"},
		{"auto", map[string]string{"CI": ""}, true, "plain"},
		{"auto", nil, false, "plain"},
		{"auto", map[string]string{"TERM": "dumb"}, true, "plain"},
		{"tty", map[string]string{"CI": "true"}, false, "tty"},
		{"plain", nil, true, "plain"},
		{"none", nil, true, "none"},
	}
	for _, c := range cases {
		got, err := resolveProgress(c.mode, envOf(c.env), c.terminal)
		require.NoError(t, err)
		assert.Equal(t, c.want, got, "--progress %s, env %v, terminal %v", c.mode, c.env, c.terminal)
	}

	_, err := resolveProgress("fancy", envOf(nil), true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--progress "fancy": use auto, tty, plain or none`)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, exitUsage, ee.code)
}

func TestNewProgressOnABufferIsPlainUnlessAsked(t *testing.T) {
	var b bytes.Buffer
	p, err := newProgress("auto", &b, envOf(nil))
	require.NoError(t, err)
	assert.IsType(t, &plainProgress{}, p, "a buffer is not a terminal")
	p, err = newProgress("tty", &b, envOf(nil))
	require.NoError(t, err)
	assert.IsType(t, &ttyProgress{}, p)
	p.Close()
	p, err = newProgress("none", &b, envOf(nil))
	require.NoError(t, err)
	p.Phase(lab.Slot{Host: "h", Index: 1}, attemptOf("a", 1), "clone")
	assert.Empty(t, b.String())
}

func TestUnknownProgressIsAUsageError(t *testing.T) {
	code, _, errs := sxlab(t, "run", "--config", demoConfig, "--progress", "fancy")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "use auto, tty, plain or none")
}

func attemptOf(label string, repeat int) matrices.Attempt {
	return matrices.Attempt{Cell: matrices.Cell{ID: "id-" + label, Label: label}, Repeat: repeat}
}

func recordOf(a matrices.Attempt, v lab.Verdict, reason string) lab.Record {
	return lab.Record{Cell: a.Cell.ID, Label: a.Cell.Label, Repeat: a.Repeat, Final: true, Verdict: v, Reason: reason, Host: "mac", Simulated: true}
}

// clock is a time that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// screen replays what a terminal shows for the output of the tty display,
// which writes "\n" expecting the terminal to return the carriage too (as
// ttys do by default). Sequences it does not know fail the test.
type screen struct {
	t        *testing.T
	lines    [][]rune
	row, col int
}

func replay(t *testing.T, out string) *screen {
	t.Helper()
	s := &screen{t: t, lines: [][]rune{nil}}
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '\r':
			s.col = 0
		case '\n':
			s.row, s.col = s.row+1, 0
			if s.row == len(s.lines) {
				s.lines = append(s.lines, nil)
			}
		case 0x1b:
			j := i + 2
			for j < len(rs) && (rs[j] >= '0' && rs[j] <= '9') {
				j++
			}
			require.Less(t, j, len(rs), "escape cut short")
			require.Equal(t, '[', rs[i+1], "not a CSI sequence")
			n := 1
			if j > i+2 {
				n, _ = strconv.Atoi(string(rs[i+2 : j]))
			}
			switch rs[j] {
			case 'A':
				s.row = max(s.row-n, 0)
			case 'J':
				s.lines[s.row] = s.lines[s.row][:min(s.col, len(s.lines[s.row]))]
				s.lines = s.lines[:s.row+1]
			default:
				t.Fatalf("unexpected escape %q", string(rs[i:j+1]))
			}
			i = j
		default:
			require.GreaterOrEqual(t, r, rune(0x20), "control character %q written", r)
			line := s.lines[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.lines[s.row] = line
			s.col++
		}
	}
	return s
}

// text is the screen's lines, without trailing blanks.
func (s *screen) text() []string {
	var out []string
	for _, l := range s.lines {
		out = append(out, strings.TrimRight(string(l), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

func lineWith(lines []string, parts ...string) string {
	for _, l := range lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return l
		}
	}
	return ""
}

func testTTY(width, height int) (*ttyProgress, *bytes.Buffer, *clock) {
	var b bytes.Buffer
	c := &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	p := newTTYProgress(&b, func() (int, int) { return width, height }, c.now, 0, 0)
	return p, &b, c
}

var (
	mac1 = lab.Slot{Host: "mac", Provider: "sim", Index: 1}
	mac2 = lab.Slot{Host: "mac", Provider: "sim", Index: 2}
)

func TestTTYShowsWhatEachBusySlotDoes(t *testing.T) {
	p, out, clk := testTTY(120, 0)
	running, stopped := attemptOf("vpn=running path=2->3", 1), attemptOf("vpn=stopped path=2->3", 2)
	p.Phase(mac1, running, "clone")
	clk.advance(5 * time.Second)
	p.Phase(mac2, stopped, "clone")
	clk.advance(time.Second)
	p.Phase(mac2, stopped, "upgrade")
	clk.advance(64 * time.Second)
	p.Phase(mac1, running, "clone") // the same phase again: its clock keeps running

	lines := replay(t, out.String()).text()
	require.Len(t, lines, 3, "the bar and two busy slots: %q", lines)
	assert.Contains(t, lines[0], "none finished yet, 1m10s elapsed")
	assert.Regexp(t, `^  mac#1  clone +1m10s  r1  vpn=running path=2->3$`, lines[1])
	assert.Regexp(t, `^  mac#2  upgrade +1m04s  r2  vpn=stopped path=2->3$`, lines[2])

	clk.advance(10 * time.Second)
	p.Finished(recordOf(running, lab.Pass, ""), 1, 4)
	lines = replay(t, out.String()).text()
	require.Len(t, lines, 2, "a pass is not printed and its slot is idle: %q", lines)
	assert.Regexp(t, `^  25% \|█+ +\| \(1/4\) 1m20s elapsed$`, lines[0], "no ETA while mac#2 has finished nothing")
	assert.Contains(t, lines[1], "mac#2  upgrade")

	third := attemptOf("vpn=off path=2->3", 1)
	p.Phase(mac1, third, "clone")
	clk.advance(10 * time.Second)
	p.Finished(recordOf(stopped, lab.Pass, ""), 2, 4) // mac#2's try: 85 s
	lines = replay(t, out.String()).text()
	// Tries of 80 s and 85 s: 2 attempts left at 82.5 s, less mac#1's 10 s
	// on the third, over 2 slots.
	assert.Regexp(t, `\(2/4\) 1m30s elapsed, ETA 1m18s$`, lines[0])

	clk.advance(30 * time.Second)
	p.Phase(mac1, third, "probe")
	lines = replay(t, out.String()).text()
	assert.Contains(t, lines[0], "2m00s elapsed, ETA 1m03s", "the ETA counts down between records")
	assert.Regexp(t, `^  mac#1  probe +0s  r1  vpn=off`, lines[1])
	p.Close()
}

func TestTTYPrintsFailuresAboveTheBarAndCloseLeavesThem(t *testing.T) {
	p, out, clk := testTTY(120, 0)
	a, b, c := attemptOf("vpn=running", 1), attemptOf("vpn=stopped", 1), attemptOf("vpn=off", 1)
	p.Phase(mac1, a, "probe")
	p.Phase(mac2, b, "boot")
	clk.advance(2 * time.Second)
	p.Finished(recordOf(a, lab.Fail, "probe xpc: no reply\nfrom the extension"), 1, 3)
	p.Phase(mac1, c, "clone")
	p.Finished(recordOf(b, lab.Error, "boot: timed out"), 2, 3)

	lines := replay(t, out.String()).text()
	require.Len(t, lines, 4, "%q", lines)
	assert.Equal(t, "   2.0s [1/3] vpn=running r1: simulated fail (probe xpc: no reply from the extension)", lines[0])
	assert.Equal(t, "   2.0s [2/3] vpn=stopped r1: simulated error (boot: timed out)", lines[1])
	assert.Contains(t, lines[2], "(2/3)")
	assert.Contains(t, lines[3], "mac#1  clone")
	assert.Empty(t, lineWith(lines, "mac#2"), "the errored attempt's slot is idle")

	p.Log("sxlab: interrupted")
	p.Close()
	s := replay(t, out.String())
	assert.Equal(t, []string{lines[0], lines[1], "sxlab: interrupted"}, s.text(), "the display is gone, the failures stay")
	assert.Equal(t, 0, s.col, "the summary starts on a line of its own")
	assert.Equal(t, len(s.lines)-1, s.row)
	assert.Empty(t, strings.TrimSpace(string(s.lines[s.row])))
}

func TestTTYRetryOnAnotherSlotFreesTheFirst(t *testing.T) {
	p, out, _ := testTTY(120, 0)
	a := attemptOf("vpn=running", 1)
	p.Phase(mac1, a, "cleanup") // its try ends in error: no record is reported
	p.Phase(mac2, a, "clone")   // the retry
	lines := replay(t, out.String()).text()
	require.Len(t, lines, 2, "%q", lines)
	assert.Contains(t, lines[1], "mac#2  clone")
	p.Close()
}

func TestTTYCloseWithNothingShownWritesNothing(t *testing.T) {
	p, out, _ := testTTY(80, 0)
	p.Close()
	p.Close()
	assert.Empty(t, out.String())
}

func TestTTYLinesFitTheTerminal(t *testing.T) {
	p, out, _ := testTTY(50, 6)
	long := attemptOf(strings.Repeat("macos=macos-15.3 ", 5), 3)
	for i := 1; i <= 6; i++ {
		a := long
		a.Cell.ID += strconv.Itoa(i)
		p.Phase(lab.Slot{Host: "studio", Index: i}, a, "wait-extension")
	}
	p.Finished(recordOf(attemptOf("x", 1), lab.Pass, ""), 1, 100)
	lines := replay(t, out.String()).text()
	for _, l := range lines {
		assert.Less(t, uniseg.StringWidth(l), 50, "%q wraps", l)
	}
	require.Len(t, lines, 5, "a 6-line terminal keeps a line free: %q", lines)
	assert.Contains(t, lines[0], "(1/100)")
	assert.True(t, strings.HasPrefix(lines[1], "  studio#1  wait-extension     0s  r3  macos-15."), "the repeat first, then the values without their axis names: %s", lines[1])
	assert.True(t, strings.HasSuffix(lines[1], "…"), lines[1])
	assert.Equal(t, "  … and 3 more busy slot(s)", lines[4])
}

func TestTTYRedrawsAtMostTenTimesASecond(t *testing.T) {
	var w countingWriter
	clk := &clock{t: time.Unix(0, 0)}
	p := newTTYProgress(&w, func() (int, int) { return 80, 0 }, clk.now, ttyRedrawEvery, 0)
	for i := range 1000 {
		p.Phase(mac1, attemptOf("a", 1), fmt.Sprint("step", i))
	}
	assert.Equal(t, 1, w.writes, "the first report draws, the next ones within 100ms wait")
	clk.advance(ttyRedrawEvery)
	p.Phase(mac1, attemptOf("a", 1), "probe")
	assert.Equal(t, 2, w.writes)
	p.Finished(recordOf(attemptOf("a", 1), lab.Fail, "x"), 1, 1)
	assert.Equal(t, 3, w.writes, "a failure is printed at once")
	p.Close()
}

// countingWriter counts writes; it has no WriteString, so that
// io.WriteString goes through Write.
type countingWriter struct{ writes int }

func (w *countingWriter) Write(b []byte) (int, error) {
	w.writes++
	return len(b), nil
}

// syncBuffer is a buffer that the race detector can watch being written
// by the display's redraw goroutine and read by the test afterwards.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTTYConcurrentReports(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out syncBuffer
	p := newTTYProgress(&out, func() (int, int) { return 100, 0 }, time.Now, time.Millisecond, time.Millisecond)
	const slots, perSlot = 6, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for s := 1; s <= slots; s++ {
		wg.Go(func() {
			slot := lab.Slot{Host: "mac", Index: s}
			for i := range perSlot {
				a := attemptOf(fmt.Sprintf("cell=%d-%d", s, i), 1)
				for _, ph := range []string{"clone", "boot", "install", "upgrade", "probe", "cleanup"} {
					p.Phase(slot, a, ph)
				}
				v := lab.Pass
				if i%10 == 0 {
					v = lab.Fail
				}
				mu.Lock()
				done++
				p.Finished(recordOf(a, v, "probe xpc"), done, slots*perSlot)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	p.Close()
	lines := replay(t, out.String()).text()
	require.Len(t, lines, slots*perSlot/10, "exactly the failures stay: %q", lines)
	for _, l := range lines {
		assert.Regexp(t, `^ +\d+\.\ds \[\d+/240\] cell=\d-\d+ r1: simulated fail \(probe xpc\)$`, l)
	}
}

func TestPlainPrintsALinePerPhaseAndRecord(t *testing.T) {
	var b bytes.Buffer
	clk := &clock{t: time.Unix(0, 0)}
	p := newPlainProgress(&b, clk.now)
	a := attemptOf("vpn=running", 2)
	p.Phase(mac1, a, "clone")
	clk.advance(1500 * time.Millisecond)
	p.Phase(mac1, a, "upgrade")
	p.Finished(recordOf(a, lab.Fail, "probe xpc:\r\nno reply"), 3, 12)
	p.Log("sxlab: interrupted")
	p.Close()
	assert.Equal(t, "   0.0s mac#1 vpn=running r2: clone\n"+
		"   1.5s mac#1 vpn=running r2: upgrade\n"+
		"   1.5s [3/12] vpn=running r2: simulated fail (probe xpc:  no reply)\n"+
		"sxlab: interrupted\n", b.String())
}

func TestShort(t *testing.T) {
	assert.Equal(t, "0s", short(-time.Second))
	assert.Equal(t, "59s", short(59*time.Second))
	assert.Equal(t, "1m00s", short(59500*time.Millisecond))
	assert.Equal(t, "3m04s", short(3*time.Minute+4*time.Second))
	assert.Equal(t, "1h02m", short(time.Hour+2*time.Minute+59*time.Second))
}

func TestTTYShowsTheBarFromTheStartAndRetriesAsTheyHappen(t *testing.T) {
	p, out, clk := testTTY(120, 0)
	p.Started(4, 1) // a resumed run: one attempt was done before
	lines := replay(t, out.String()).text()
	require.NotEmpty(t, lines)
	assert.Contains(t, lines[0], "(1/4)", "the bar is there before any attempt of this run finishes")

	a := attemptOf("vpn=running", 1)
	p.Phase(mac1, a, "boot")
	clk.advance(3 * time.Second)
	rec := recordOf(a, lab.Error, "boot: sshd did not answer")
	rec.Final, rec.Try = false, 1
	p.Finished(rec, 1, 4)
	lines = replay(t, out.String()).text()
	assert.Equal(t, "   3.0s [1/4] vpn=running r1: simulated error (boot: sshd did not answer) — try 1, will retry", lines[0])
	assert.Contains(t, lines[1], "(1/4)", "a retried try does not count as done")
	assert.Empty(t, lineWith(lines, "mac#1"), "the slot of the retried try is free")

	clk.advance(3 * time.Second)
	p.Finished(recordOf(a, lab.Pass, ""), 2, 4)
	lines = replay(t, out.String()).text()
	// The resumed attempt does not count; the one try of this run took 3 s,
	// and 2 attempts are left for the one slot.
	assert.Regexp(t, `\(2/4\) 6s elapsed, ETA 6s$`, lines[len(lines)-1], "the ETA counts only this run's tries")
	p.Close()
}

func TestTransferShowsBytesOnTheSlotLine(t *testing.T) {
	p, out, _ := testTTY(140, 0)
	a := attemptOf("vpn=running", 1)
	p.Phase(mac1, a, "collect sysdiagnose")
	tr := p.Transfer(mac1, a)
	tr(300<<20, 1200<<20)
	lines := replay(t, out.String()).text()
	line := lineWith(lines, "mac#1")
	assert.Contains(t, line, "collect sysdiagnose")
	assert.Contains(t, line, "25% |", "a bar")
	assert.Contains(t, line, "300.0 MiB/1.2 GiB", "bytes moved so far")
	assert.Contains(t, line, "r1  ")
	assert.Contains(t, line, "vpn=running")

	tr(1200<<20, 1200<<20)
	p.Phase(mac1, a, "collect state")
	line = lineWith(replay(t, out.String()).text(), "mac#1")
	assert.Contains(t, line, "collect state")
	assert.Contains(t, line, "↓1.2 GiB", "what was downloaded stays on the line after the download's phase")
	assert.NotContains(t, line, "|", "no bar once it is done")

	b := attemptOf("vpn=stopped", 1)
	p.Phase(mac1, b, "clone")
	assert.NotContains(t, lineWith(replay(t, out.String()).text(), "mac#1"), "GiB", "the next attempt starts without")
	p.Close()

	var pb bytes.Buffer
	c := &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	plain := newPlainProgress(&pb, c.now)
	tr = plain.Transfer(mac1, a)
	for done := int64(0); done <= 100; done += 5 {
		tr(done<<20, 100<<20)
	}
	assert.Equal(t, 5, strings.Count(pb.String(), "download "), "a line at each quarter and at the end:\n%s", pb.String())
	assert.Contains(t, pb.String(), "download 100.0 MiB of 100.0 MiB")
}

// TestTransferQuickerThanAFrameIsStillSeen is the demo's sysdiagnose: a
// few KiB, downloaded between two frames, then the next phase at once.
func TestTransferQuickerThanAFrameIsStillSeen(t *testing.T) {
	var b bytes.Buffer
	clk := &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	p := newTTYProgress(&b, func() (int, int) { return 120, 0 }, clk.now, ttyRedrawEvery, 0)
	a := attemptOf("vpn=running", 1)
	p.Phase(mac1, a, "collect sysdiagnose") // drawn
	tr := p.Transfer(mac1, a)
	tr(2048, 5018)
	tr(5018, 5018)
	p.Phase(mac1, a, "collect state") // within the same 100 ms: not drawn
	clk.advance(ttyRedrawEvery)
	p.Phase(mac1, a, "collect logs")
	assert.Contains(t, b.String(), "4.9 KiB/4.9 KiB", "the download's end was drawn")
	assert.Contains(t, lineWith(replay(t, b.String()).text(), "mac#1"), "↓4.9 KiB", "and stays on the line")
	p.Finished(recordOf(a, lab.Fail, "probe xpc: no reply"), 1, 2)
	assert.Contains(t, replay(t, b.String()).text()[0], "(probe xpc: no reply); downloaded 4.9 KiB of 4.9 KiB",
		"the failure's line, which stays, says the download happened")
	p.Close()
}

func TestTTYFailureLinesBreakBetweenWords(t *testing.T) {
	p, out, clk := testTTY(60, 0)
	a := attemptOf("macos=macos-15.3 path=2->3 vpn=running", 1)
	p.Phase(mac1, a, "probe")
	clk.advance(2 * time.Second)
	p.Finished(recordOf(a, lab.Fail, "probe mach-endpoint: job NetworkExtension.com.example.vpn.tunnel.3.0.300 has no endpoints block"), 1, 3)
	lines := replay(t, out.String()).text()
	require.GreaterOrEqual(t, len(lines), 3)
	var text []string
	for _, l := range lines[:len(lines)-1] {
		assert.Less(t, uniseg.StringWidth(l), 60, "%q would wrap", l)
		text = append(text, strings.TrimSpace(l))
	}
	assert.True(t, strings.HasPrefix(lines[1], "        "), "the continuation is indented past the time stamp: %q", lines[1])
	joined := strings.Join(text, " ")
	assert.Contains(t, joined, "has no endpoints block)", "no word is cut")
	assert.Contains(t, joined, "job NetworkExtension.com.example.vpn.tunnel.3.0.300 has")
}

func TestTTYSlotLinesAt80ColumnsKeepTheRepeatAndEveryValue(t *testing.T) {
	p, out, _ := testTTY(80, 0)
	a := attemptOf("macos=macos-15.3 path=1->3 vpn=running approval=approved", 3)
	p.Phase(mac1, a, "collect sysdiagnose")
	line := lineWith(replay(t, out.String()).text(), "mac#1")
	assert.Less(t, uniseg.StringWidth(line), 80)
	assert.Contains(t, line, "r3")
	assert.Contains(t, line, "macos-15.3 1->3 running approved", "every value, the names dropped to fit")
	p.Close()
}
