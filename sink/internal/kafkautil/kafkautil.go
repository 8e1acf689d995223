// Package kafkautil holds the Kafka administration the relay and the
// consumer share: creating the event topics through the controller. The
// topic's name, partitions and replication factor are defaults, in
// sink/internal/defaults.
package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
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
