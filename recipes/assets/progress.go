package assets

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows the uploads on a terminal: files done of all and bytes
// sent of all, in a bar on the bottom line. Off a terminal it shows
// nothing (plain and json get the summary only). Safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar // nil: nothing is shown
	files int
	done  int
}

// newProgress starts a bar on w for files of bytes in all; a nil w (no
// live terminal) makes a progress that shows nothing.
func newProgress(w io.Writer, files int, bytes int64) *progress {
	p := &progress{files: files}
	if w == nil || files == 0 {
		return p
	}
	p.bar = progressbar.NewOptions64(bytes,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(p.describe()),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionClearOnFinish(),
	)
	return p
}

func (p *progress) describe() string {
	return fmt.Sprintf("uploading %d/%d files", p.done, p.files)
}

// fileDone counts one uploaded file of size bytes.
func (p *progress) fileDone(size int64) {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	// Either call draws the bar, at most once per throttle interval;
	// the bytes first, so the first drawing has some.
	p.bar.Add64(size)
	p.bar.Describe(p.describe())
}

// finish clears the bar, before the summary is printed.
func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.Finish()
	p.bar.Clear()
}
