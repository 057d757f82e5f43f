// Package sdklog gives the AWS SDK a logger of davit's. The SDK's own
// default writes its warnings (an instance-metadata fallback, a response
// without a checksum) straight to stderr, past davit's output and its
// redactor; with these they reach the task's output, or the error that
// ends a call, like every other byte davit writes.
package sdklog

import (
	"fmt"
	"strings"
	"sync"

	"github.com/aws/smithy-go/logging"
)

// format is one SDK message as davit shows it: "AWS SDK warn: ...".
func format(c logging.Classification, f string, v []any) string {
	return fmt.Sprintf("AWS SDK %s: %s", strings.ToLower(string(c)), strings.TrimSpace(fmt.Sprintf(f, v...)))
}

// To returns a logger that hands each message to emit (a task's Warn).
func To(emit func(string)) logging.Logger {
	return logging.LoggerFunc(func(c logging.Classification, f string, v ...any) {
		emit(format(c, f, v))
	})
}

// Collector keeps the SDK's messages for a caller with no output at hand
// (a host source), which quotes them in the error it returns. Safe for
// concurrent use.
type Collector struct {
	mu   sync.Mutex
	msgs []string
}

// Logf implements logging.Logger.
func (c *Collector) Logf(class logging.Classification, f string, v ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, format(class, f, v))
}

// Explain adds what the SDK said to err, when it said anything; nil stays
// nil.
func (c *Collector) Explain(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil || len(c.msgs) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(c.msgs, "; "))
}
