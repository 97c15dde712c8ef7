package loadtest

import (
	"context"
	"fmt"
	"time"

	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/ari/aritest"
)

// amiSink writes steps to the fake manager interface: one write (and flush) per batch,
// every event byte for byte as Asterisk 22 renders it.
type amiSink struct {
	srv *amitest.Server
	buf []byte
}

func (s *amiSink) send(_ context.Context, batch []batchStep, writing func(*batchStep, time.Time)) (int, error) {
	s.buf = s.buf[:0]
	for _, b := range batch {
		s.buf = b.step.AppendAMI(s.buf)
	}
	at := time.Now()
	for i := range batch {
		writing(&batch[i], at)
	}
	if err := s.srv.Send(s.buf); err != nil {
		return 0, fmt.Errorf("writing %d AMI events: %w", len(batch), err)
	}
	return len(batch), nil
}

// ariSink writes steps to the fake ARI events websocket, one message per event. Steps
// that have no ARI form (queue and music-on-hold events) are not sent.
type ariSink struct {
	srv *aritest.Server
	buf []byte
}

func (s *ariSink) send(ctx context.Context, batch []batchStep, writing func(*batchStep, time.Time)) (int, error) {
	n := 0
	for i := range batch {
		b := &batch[i]
		var ok bool
		s.buf, ok = b.step.AppendARI(s.buf[:0], b.start)
		writing(b, time.Now())
		if !ok {
			continue
		}
		if err := s.srv.Send(ctx, s.buf); err != nil {
			return n, fmt.Errorf("writing an ARI event: %w", err)
		}
		n++
	}
	return n, nil
}
