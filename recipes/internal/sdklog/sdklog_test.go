package sdklog

import (
	"errors"
	"testing"

	"github.com/aws/smithy-go/logging"
)

func TestToHandsOverEachMessage(t *testing.T) {
	var got []string
	To(func(m string) { got = append(got, m) }).Logf(logging.Warn, "falling back to %s\n", "IMDSv1")
	if len(got) != 1 || got[0] != "AWS SDK warn: falling back to IMDSv1" {
		t.Errorf("got %q", got)
	}
}

func TestCollectorExplainsOnlyErrors(t *testing.T) {
	var c Collector
	if err := c.Explain(nil); err != nil {
		t.Errorf("nil became %v", err)
	}
	base := errors.New("no credentials")
	if err := c.Explain(base); err != base {
		t.Errorf("nothing said, yet %v", err)
	}
	c.Logf(logging.Warn, "falling back to IMDSv1")
	c.Logf(logging.Debug, "retrying")
	err := c.Explain(base)
	if !errors.Is(err, base) || err.Error() != "no credentials (AWS SDK warn: falling back to IMDSv1; AWS SDK debug: retrying)" {
		t.Errorf("got %v", err)
	}
}
