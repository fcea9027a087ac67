package results

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress reports images processed by a batch run: a live bar on a terminal,
// and a plain line every few seconds otherwise (logs, CI, nohup), where a
// redrawn bar would leave a mess of carriage returns.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	total int
	done  int // images processed so far, including those of earlier sessions
	start int // images already done when this session began
	began time.Time
	last  time.Time
	every time.Duration
	bar   *progressbar.ProgressBar
}

// NewProgress starts reporting on w. done is the number of images an earlier,
// interrupted session already processed; rate and ETA count only this one.
func NewProgress(w io.Writer, label string, total, done int) *Progress {
	return newProgress(w, label, total, done, isTerminal(w))
}

func newProgress(w io.Writer, label string, total, done int, terminal bool) *Progress {
	now := time.Now()
	p := &Progress{w: w, label: label, total: total, done: done, start: done,
		began: now, last: now, every: 10 * time.Second}
	if terminal && total > done {
		desc := label
		if done > 0 {
			desc = fmt.Sprintf("%s (%d/%d done before)", label, done, total)
		}
		// The bar counts this session only: progressbar derives its rate from
		// the count, so a resumed run's earlier images would inflate it.
		p.bar = progressbar.NewOptions(total-done,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("img"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond))
		p.bar.RenderBlank()
	} else if done > 0 {
		fmt.Fprintf(w, "%s: resuming at %d/%d images\n", label, done, total)
	}
	return p
}

// Add counts n more images.
func (p *Progress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.bar != nil {
		p.bar.Add(n)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		fmt.Fprintln(p.w, p.line(now))
	}
}

// Close ends the bar or prints a last line. It does not pretend an
// interrupted run is complete.
func (p *Progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Exit()
		fmt.Fprintln(p.w)
		p.bar = nil
	}
	fmt.Fprintln(p.w, p.line(time.Now()))
}

// line renders "extract: 1200/4550 images, 35.2 img/s, ETA 1m35s".
func (p *Progress) line(now time.Time) string {
	s := fmt.Sprintf("%s: %d/%d images", p.label, p.done, p.total)
	elapsed := now.Sub(p.began)
	n := p.done - p.start
	if n <= 0 || elapsed <= 0 {
		return s
	}
	rate := float64(n) / elapsed.Seconds()
	s += fmt.Sprintf(", %.1f img/s", rate)
	if left := p.total - p.done; left > 0 {
		eta := time.Duration(float64(left) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	} else {
		s += ", took " + elapsed.Round(time.Second).String()
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
