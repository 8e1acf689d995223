// Package kafkautil holds what the relay and the consumer share: topic
// creation through the controller, and bounded exponential back-off.
package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// The event topic's contract, shared by the relay (writer), the consumer
// (reader) and the embedded broker: defined once so they cannot drift.
const (
	// Topic is the default order-event topic.
	Topic = "wxpayd.order-events"
	// Partitions is the partition count of the topic when wxpayd creates it.
	Partitions = 6
	// ReplicationFactor is its replication factor when wxpayd creates it.
	ReplicationFactor = 1
)

// EnsureTopics creates each topic with the given partitions and replication
// factor unless it exists. kafka-go's Client routes CreateTopics to the
// controller. It uses its own Transport so its metadata cache is nobody
// else's (kafka-go caches metadata for 6 s per Transport).
func EnsureTopics(ctx context.Context, brokers []string, partitions, rf int, topics ...string) error {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: tr}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: rf})
	}
	resp, err := cl.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	var errs []error
	for t, e := range resp.Errors {
		if e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t, e))
		}
	}
	return errors.Join(errs...)
}

// Backoff is a bounded exponential back-off: Min, doubling up to Max.
// The zero value backs off 100 ms to 5 s. Not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 5*time.Second)
	}
	if b.cur < lo {
		b.cur = lo
	} else {
		b.cur = min(b.cur*2, hi)
	}
	return b.cur
}

// Reset starts over at Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits for the next delay or ctx, whichever comes first, and
// returns ctx.Err() if ctx ended.
func (b *Backoff) Sleep(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
