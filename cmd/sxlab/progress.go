package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rivo/uniseg"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/matrices"
)

// Progress shows a run's attempts as they go, on stderr; the summary goes
// to stdout on its own. lab.Run calls Phase and Finished from several
// slots at once, so implementations are safe for concurrent use.
type Progress interface {
	// Started reports the run's size before its first attempt: total
	// attempts, done already (a resumed run's).
	Started(total, done int)
	// Phase reports that the attempt on slot entered a step or phase.
	Phase(slot lab.Slot, a matrices.Attempt, phase string)
	// Finished reports a try's record (a retried error is not final);
	// done counts the final records so far (resumed ones included) out of
	// total.
	Finished(r lab.Record, done, total int)
	// Transfer returns the byte progress of an attempt's download (the
	// sysdiagnose: hundreds of megabytes).
	Transfer(slot lab.Slot, a matrices.Attempt) guest.Progress
	// Log prints a line of its own, above any live display.
	Log(line string)
	// Close ends the display, leaving the cursor at the start of a clean
	// line so that what is printed next starts there.
	Close()
}

// The values of --progress.
const (
	progressAuto  = "auto"
	progressTTY   = "tty"
	progressPlain = "plain"
	progressNone  = "none"
)

// resolveProgress turns --progress into the renderer to use. auto draws in
// place for a person at a terminal, and prints lines for logs: when stderr
// is not a terminal, in CI (which sets CI, even with a pseudo-terminal),
// and on terminals that cannot move the cursor (TERM=dumb).
func resolveProgress(mode string, lookupEnv func(string) (string, bool), terminal bool) (string, error) {
	switch mode {
	case progressTTY, progressPlain, progressNone:
		return mode, nil
	case progressAuto:
		if _, ci := lookupEnv("CI"); ci || !terminal {
			return progressPlain, nil
		}
		if t, _ := lookupEnv("TERM"); t == "dumb" {
			return progressPlain, nil
		}
		return progressTTY, nil
	}
	return "", usageError("--progress %q: use auto, tty, plain or none", mode)
}

// newProgress makes the renderer --progress asks for, drawing on w.
// Nothing is drawn and no goroutine runs until the first report.
func newProgress(mode string, w io.Writer, lookupEnv func(string) (string, bool)) (Progress, error) {
	fd, isTerm := terminalFd(w)
	kind, err := resolveProgress(mode, lookupEnv, isTerm)
	if err != nil {
		return nil, err
	}
	switch kind {
	case progressNone:
		return noProgress{}, nil
	case progressPlain:
		return newPlainProgress(w, time.Now), nil
	}
	size := func() (int, int) { return defaultWidth, 0 }
	if isTerm {
		size = func() (int, int) {
			width, height, err := term.GetSize(fd)
			if err != nil || width <= 0 {
				return defaultWidth, 0
			}
			return width, height
		}
	}
	return newTTYProgress(w, size, time.Now, ttyRedrawEvery, ttyRedrawEvery), nil
}

// defaultWidth is assumed when the width of the terminal is unknown
// (--progress tty on something that is not one).
const defaultWidth = 80

func terminalFd(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// noProgress is --progress none.
type noProgress struct{}

func (noProgress) Started(int, int)                         {}
func (noProgress) Phase(lab.Slot, matrices.Attempt, string) {}
func (noProgress) Finished(lab.Record, int, int)            {}
func (noProgress) Log(string)                               {}
func (noProgress) Transfer(lab.Slot, matrices.Attempt) guest.Progress {
	return nil
}
func (noProgress) Close() {}

// plainProgress prints one line per phase change, no carriage returns:
// the form for CI logs.
type plainProgress struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	start time.Time
}

func newPlainProgress(w io.Writer, now func() time.Time) *plainProgress {
	return &plainProgress{w: w, now: now, start: now()}
}

func (p *plainProgress) Phase(slot lab.Slot, a matrices.Attempt, phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s %s r%d: %s\n", stamp(p.now().Sub(p.start)), slotName(slot), oneLine(a.Cell.Label), a.Repeat, oneLine(phase))
}

func (p *plainProgress) Started(total, done int) {}

func (p *plainProgress) Finished(r lab.Record, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, stamp(p.now().Sub(p.start))+" "+finishedLine(r, done, total))
}

// Transfer prints a line at each quarter of the download.
func (p *plainProgress) Transfer(slot lab.Slot, a matrices.Attempt) guest.Progress {
	last := int64(-1)
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		q := 4 * done / total
		p.mu.Lock()
		defer p.mu.Unlock()
		if q == last {
			return
		}
		last = q
		fmt.Fprintf(p.w, "%s %s %s r%d: download %s of %s\n", stamp(p.now().Sub(p.start)), slotName(slot),
			oneLine(a.Cell.Label), a.Repeat, artifacts.HumanSize(done), artifacts.HumanSize(total))
	}
}

func (p *plainProgress) Log(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, line)
}

func (p *plainProgress) Close() {}

// stamp is the time since the run started, in a fixed-width column.
func stamp(d time.Duration) string { return fmt.Sprintf("%6.1fs", d.Seconds()) }

func slotName(s lab.Slot) string { return fmt.Sprintf("%s#%d", s.Host, s.Index) }

// finishedLine words an attempt's final record, the same in every mode.
func finishedLine(r lab.Record, done, total int) string {
	verdict := string(r.Verdict)
	if r.Simulated {
		verdict = "simulated " + verdict
	}
	line := fmt.Sprintf("[%d/%d] %s r%d: %s", done, total, oneLine(r.Label), r.Repeat, verdict)
	if r.Reason != "" {
		line += " (" + oneLine(r.Reason) + ")"
	}
	switch {
	case r.Interrupted:
		line += fmt.Sprintf(" — try %d cut short by the interrupt; a resume runs it again", r.Try)
	case !r.Final:
		line += fmt.Sprintf(" — try %d, will retry", r.Try)
	}
	return line
}

// oneLine replaces control characters (a guest's output in a reason may
// hold newlines or carriage returns) so that a line stays one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Redraw pacing of the tty display: at most ten frames a second, and one
// a second when nothing happens so that the clocks advance.
const (
	ttyRedrawEvery = 100 * time.Millisecond
	ttyIdleRedraw  = time.Second
)

// ANSI sequences the tty display uses: all of them are understood by
// every terminal emulator in use (VT100).
const (
	ansiUp        = "\x1b[%dA" // cursor up n lines
	ansiEraseDown = "\x1b[J"   // erase from the cursor to the end of the screen
)

// ttyProgress draws, in place at the bottom of the terminal, a bar of the
// attempts done with their ETA and one line per busy slot. Records that
// failed or errored are printed above it and stay.
type ttyProgress struct {
	mu    sync.Mutex
	w     io.Writer
	size  func() (width, height int) // height 0: unknown
	now   func() time.Time
	every time.Duration // least time between two frames
	tick  time.Duration // period of the background redraw; 0: none (tests)
	start time.Time

	busy  map[lab.Slot]activity
	known bool // a record arrived, so done and total are known
	done  int
	total int
	base  int // records that were final before this run (resume)

	// The ETA's basis: how long this run's tries took, and how many each
	// slot finished. There is an ETA once every slot that ran something
	// has finished a try: before, the first tries' pace (boots, cold
	// caches) says little, and a slot that has not finished one yet says
	// nothing about its own.
	tries    int
	busyTime time.Duration
	finished map[lab.Slot]int

	shown    int // lines of the frame on screen; the cursor ends its last line
	active   bool
	dirty    bool
	lastDraw time.Time
	closed   bool
	stop     chan struct{}
	stopped  chan struct{}
}

// activity is what a busy slot is doing.
type activity struct {
	attempt matrices.Attempt
	phase   string
	since   time.Time
	// began is when the try started on the slot (its first phase).
	began time.Time
	// bytes of size moved by the attempt's download; size 0: none. They
	// stay on the line after the download's phase, so that a download
	// quicker than a frame is still seen.
	bytes, size int64
	// downloading: the download belongs to the current phase.
	downloading bool
}

func newTTYProgress(w io.Writer, size func() (int, int), now func() time.Time, every, tick time.Duration) *ttyProgress {
	return &ttyProgress{w: w, size: size, now: now, every: every, tick: tick, start: now(),
		busy: map[lab.Slot]activity{}, finished: map[lab.Slot]int{}}
}

func (p *ttyProgress) Phase(slot lab.Slot, a matrices.Attempt, phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.activate()
	// A retried attempt may come back on another slot; the slot it left
	// was never reported idle (only final records are).
	for s, act := range p.busy {
		if s != slot && act.attempt.ID() == a.ID() {
			delete(p.busy, s)
		}
	}
	if _, ok := p.finished[slot]; !ok {
		p.finished[slot] = 0 // a slot in use, with nothing finished yet
	}
	act, ok := p.busy[slot]
	switch {
	case !ok || act.attempt.ID() != a.ID():
		act = activity{attempt: a, phase: phase, since: p.now(), began: p.now()}
	case act.phase != phase:
		act.phase, act.since, act.downloading = phase, p.now(), false
	}
	p.busy[slot] = act
	p.changed()
}

func (p *ttyProgress) Started(total, done int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.activate()
	p.known, p.base, p.done, p.total = true, done, done, total
	p.changed()
}

func (p *ttyProgress) Finished(r lab.Record, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := stamp(p.now().Sub(p.start)) + " " + finishedLine(r, done, total)
	if p.closed {
		if r.Verdict != lab.Pass {
			p.write(line + "\n")
		}
		return
	}
	p.activate()
	if !p.known { // no Started: guess what was done before this run
		p.known, p.base = true, done
		if r.Final {
			p.base = max(done-1, 0)
		}
	}
	p.done, p.total = done, total
	for s, act := range p.busy {
		if act.attempt.ID() == r.AttemptKey() {
			if act.size > 0 {
				// The download is over before a person could read it on a
				// fast machine; the line that stays says it happened.
				line += fmt.Sprintf("; downloaded %s of %s", artifacts.HumanSize(act.bytes), artifacts.HumanSize(act.size))
			}
			p.tries++
			p.busyTime += p.now().Sub(act.began)
			p.finished[s]++
			delete(p.busy, s)
		}
	}
	if r.Verdict != lab.Pass {
		p.printAbove(line)
		return
	}
	p.changed()
}

// Transfer shows the download's bytes on the slot's line.
func (p *ttyProgress) Transfer(slot lab.Slot, a matrices.Attempt) guest.Progress {
	return func(done, total int64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		act, ok := p.busy[slot]
		if p.closed || !ok || act.attempt.ID() != a.ID() {
			return
		}
		act.bytes, act.size, act.downloading = done, total, true
		p.busy[slot] = act
		if done >= total {
			p.draw() // the end of a download is drawn even between frames
			return
		}
		p.changed()
	}
}

func (p *ttyProgress) Log(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.write(line + "\n")
		return
	}
	p.printAbove(line)
}

func (p *ttyProgress) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var b strings.Builder
	p.erase(&b)
	p.write(b.String())
	stop, stopped := p.stop, p.stopped
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
}

// activate starts the background redraw at the first report, so that a
// command that fails before running anything leaves no goroutine behind.
func (p *ttyProgress) activate() {
	if p.active {
		return
	}
	p.active = true
	if p.tick > 0 {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.redrawLoop(p.stop, p.stopped)
	}
}

func (p *ttyProgress) redrawLoop(stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(p.tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			if !p.closed && (p.dirty || p.now().Sub(p.lastDraw) >= ttyIdleRedraw) {
				p.draw()
			}
			p.mu.Unlock()
		}
	}
}

// changed redraws now unless a frame was drawn less than every ago; the
// background redraw then catches up.
func (p *ttyProgress) changed() {
	p.dirty = true
	if p.now().Sub(p.lastDraw) >= p.every {
		p.draw()
	}
}

// printAbove prints a line that stays, then the frame again below it.
// A line wider than the terminal is broken between words, not where the
// terminal would cut it, its continuation indented past the time stamp.
func (p *ttyProgress) printAbove(line string) {
	var b strings.Builder
	p.erase(&b)
	width, _ := p.size()
	for _, l := range wrapWords(line, width-1, strings.Repeat(" ", len(stamp(0))+1)) {
		b.WriteString(l + "\n")
	}
	if p.active {
		p.frame(&b)
	}
	p.write(b.String())
}

func (p *ttyProgress) draw() {
	var b strings.Builder
	p.erase(&b)
	p.frame(&b)
	p.write(b.String())
}

// erase moves the cursor to the start of the frame and erases it.
func (p *ttyProgress) erase(b *strings.Builder) {
	if p.shown == 0 {
		return
	}
	b.WriteString("\r")
	if p.shown > 1 {
		fmt.Fprintf(b, ansiUp, p.shown-1)
	}
	b.WriteString(ansiEraseDown)
	p.shown = 0
}

// frame writes the bar and the busy slots' lines, each cut to the width
// so that none wraps (a wrapped line would throw off the erase), without
// a newline after the last so that the cursor stays inside the frame.
func (p *ttyProgress) frame(b *strings.Builder) {
	width, height := p.size()
	lines := append([]string{p.barLine(width)}, p.slotLines(width, height)...)
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(fit(l, width-1))
	}
	p.shown = len(lines)
	p.dirty = false
	p.lastDraw = p.now()
}

// barLine is the attempts done out of total with the time elapsed and
// left. The ETA projects this run's pace (records resumed from an earlier
// run do not count) and counts down between records.
func (p *ttyProgress) barLine(width int) string {
	now := p.now()
	elapsed := now.Sub(p.start)
	if !p.known {
		return fmt.Sprintf("attempts: none finished yet, %s elapsed", short(elapsed))
	}
	desc := short(elapsed) + " elapsed"
	if eta, ok := p.eta(now); ok && p.done < p.total {
		desc += ", ETA " + short(eta)
	}
	count := fmt.Sprintf("(%d/%d)", p.done, p.total)
	// " 100% |" + bar + "| " + count + " " + desc + " "
	barWidth := min(max(width-1-len(" 100% || ")-len(count)-1-uniseg.StringWidth(desc)-1, 10), 40)
	bar := progressbar.NewOptions(p.total,
		progressbar.OptionSetWriter(io.Discard), // it only renders; the frame is written here
		progressbar.OptionSetWidth(barWidth),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
	if err := bar.Set(min(p.done, p.total)); err != nil {
		return fmt.Sprintf("attempts: %d/%d, %s", p.done, p.total, desc)
	}
	return strings.TrimRight(strings.TrimPrefix(bar.String(), "\r"), " ")
}

// eta is the time left: the attempts not done, each taking this run's
// mean try so far, less what the busy slots have already spent on theirs,
// spread over the slots in use. None until every slot in use has finished
// a try (see ttyProgress.finished).
func (p *ttyProgress) eta(now time.Time) (time.Duration, bool) {
	if p.tries == 0 || len(p.finished) == 0 {
		return 0, false
	}
	for _, n := range p.finished {
		if n == 0 {
			return 0, false
		}
	}
	mean := p.busyTime / time.Duration(p.tries)
	left := time.Duration(p.total-p.done) * mean
	for _, act := range p.busy {
		left -= min(now.Sub(act.began), mean)
	}
	return max(left/time.Duration(len(p.finished)), 0), true
}

// slotLines is one line per busy slot, in slot order: slot, phase, time in
// that phase, then the cell, which is cut first when the line is too long.
// On a short terminal the lines that do not fit are counted instead.
func (p *ttyProgress) slotLines(width, height int) []string {
	slots := make([]lab.Slot, 0, len(p.busy))
	nameWidth, phaseWidth := 0, len("wait-extension")
	for s, act := range p.busy {
		slots = append(slots, s)
		nameWidth = max(nameWidth, uniseg.StringWidth(slotName(s)))
		phaseWidth = max(phaseWidth, uniseg.StringWidth(oneLine(act.phase)))
	}
	slices.SortFunc(slots, func(a, b lab.Slot) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return a.Index - b.Index
	})
	room := len(slots)
	if height > 0 && room > height-2 {
		room = max(height-3, 0) // one line says how many are left out
	}
	now := p.now()
	var lines []string
	for _, s := range slots[:room] {
		act := p.busy[s]
		head := fmt.Sprintf("  %s  %s %6s  r%d  %s", pad(slotName(s), nameWidth), pad(oneLine(act.phase), phaseWidth),
			short(now.Sub(act.since)), act.attempt.Repeat, transferBar(act))
		label := oneLine(act.attempt.Cell.Label)
		// When the axis names do not fit, their values alone still tell
		// the cells apart (approval=pending becomes pending).
		if width > 0 && uniseg.StringWidth(head+label) > width-1 {
			label = valuesOnly(label)
		}
		lines = append(lines, head+label)
	}
	if left := len(slots) - room; left > 0 {
		lines = append(lines, fmt.Sprintf("  … and %d more busy slot(s)", left))
	}
	return lines
}

// valuesOnly drops the axis names of a label: "vpn=running path=2->3"
// is "running 2->3".
func valuesOnly(label string) string {
	words := strings.Fields(label)
	for i, w := range words {
		if _, v, ok := strings.Cut(w, "="); ok {
			words[i] = v
		}
	}
	return strings.Join(words, " ")
}

// transferBar is a small byte bar for a slot downloading, what it
// downloaded once the download's phase is over, else "".
func transferBar(act activity) string {
	if act.size <= 0 {
		return ""
	}
	if !act.downloading {
		return "↓" + artifacts.HumanSize(act.bytes) + "  "
	}
	bar := progressbar.NewOptions64(act.size,
		progressbar.OptionSetWriter(io.Discard),
		progressbar.OptionSetWidth(10),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
	)
	text := artifacts.HumanSize(act.bytes) + "/" + artifacts.HumanSize(act.size) + "  "
	if err := bar.Set64(min(act.bytes, act.size)); err != nil {
		return text
	}
	// The library's rate would be wrong under a test clock; the bytes say it.
	return strings.TrimSpace(strings.TrimPrefix(bar.String(), "\r")) + " " + text
}

// short is a duration to the second, compact: 7s, 3m04s, 1h02m.
func short(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// pad fills s with spaces to width columns.
func pad(s string, width int) string {
	if n := uniseg.StringWidth(s); n < width {
		return s + strings.Repeat(" ", width-n)
	}
	return s
}

// fit cuts s to width columns, marking the cut with an ellipsis.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if uniseg.StringWidth(s) <= width {
		return s
	}
	var b strings.Builder
	used := 0
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		if used+g.Width() > width-1 {
			break
		}
		used += g.Width()
		b.WriteString(g.Str())
	}
	return b.String() + "…"
}

func (p *ttyProgress) write(s string) {
	if s == "" {
		return
	}
	// A display that cannot be written is not worth failing the run for:
	// the journal and the summary carry the results.
	_, _ = io.WriteString(p.w, s)
}

// wrapWords breaks s into lines of at most width columns between words,
// keeping the spaces between words that stay on one line (columns line
// up); lines after the first start with indent. A word longer than a
// line is cut where it must be.
func wrapWords(s string, width int, indent string) []string {
	if width <= 0 || uniseg.StringWidth(s) <= width {
		return []string{s}
	}
	indentW := uniseg.StringWidth(indent)
	var lines []string
	cur, curW, empty := "", 0, true
	for _, tok := range wordRE.FindAllString(s, -1) {
		word := strings.TrimLeft(tok, " ")
		sep := tok[:len(tok)-len(word)]
		if empty && len(lines) == 0 {
			cur, curW, sep = sep, len(sep), "" // the line's own indent stays
		}
		ww := uniseg.StringWidth(word)
		if !empty && curW+len(sep)+ww > width {
			lines = append(lines, cur)
			cur, curW, empty, sep = indent, indentW, true, ""
		}
		for curW+len(sep)+ww > width && width > curW+len(sep) { // wider than a line
			room := width - curW - len(sep)
			g := uniseg.NewGraphemes(word)
			head, used := "", 0
			for g.Next() && used+g.Width() <= room {
				head += g.Str()
				used += g.Width()
			}
			lines = append(lines, cur+sep+head)
			word = word[len(head):]
			ww = uniseg.StringWidth(word)
			cur, curW, empty, sep = indent, indentW, true, ""
		}
		cur += sep + word
		curW += len(sep) + ww
		empty = false
	}
	if !empty {
		lines = append(lines, cur)
	}
	return lines
}

// wordRE is a word with the spaces before it.
var wordRE = regexp.MustCompile(` *[^ ]+`)
