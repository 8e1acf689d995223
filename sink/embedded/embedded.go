// Package embedded runs an in-process Kafka-protocol broker (franz-go's
// kfake) so that wxpayd, its relay and its sink run as one binary when no
// brokers are configured.
//
// The broker is one node on 127.0.0.1. Start picks a random free port
// (every caller gets the address back; nothing outside the process needs
// it); StartOn takes a fixed port, for tools that must find it. With a
// dataDir the broker persists topics, messages and committed group offsets
// there and reloads them on the next start, so events published before a
// restart are still consumed after it. Topics are created on first use
// (auto-creation, 6 partitions) as well as by CreateTopics.
//
// kfake is a test broker: fine for one machine and development, not a
// replacement for a Kafka cluster in production.
package embedded

import (
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wxpayd/wxpayd/sink/internal/defaults"
)

// DefaultPartitions is the partition count of auto-created topics.
const DefaultPartitions = defaults.Partitions

// Start starts the broker on a random loopback port, persisting to dataDir
// ("" keeps everything in memory). It returns the broker addresses and a
// function that stops the broker (flushing to dataDir); call it once.
func Start(dataDir string) (addrs []string, close func(), err error) {
	return StartOn(dataDir, 0)
}

// StartOn is Start on a fixed loopback port (0: random).
func StartOn(dataDir string, port int) (addrs []string, close func(), err error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("wxpayd-embedded"),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(DefaultPartitions),
		kfake.Ports(port),
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("embedded: %w", err)
		}
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded: start broker: %w", err)
	}
	return c.ListenAddrs(), c.Close, nil
}
