package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/relay"
)

// readTopic reads every order event in wxpayd's topic on the embedded
// broker, grouped by out_trade_no (events without one, like sku.updated,
// are skipped). It reads each partition from its first offset to the high
// watermark at the time of the call.
func readTopic(ctx context.Context, addr string) (map[string][]event.Event, int, error) {
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, fmt.Errorf("dial the embedded broker %s: %w", addr, err)
	}
	parts, err := conn.ReadPartitions(relay.DefaultTopic)
	conn.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("partitions of %s: %w", relay.DefaultTopic, err)
	}
	out := map[string][]event.Event{}
	n := 0
	for _, p := range parts {
		if err := readPartition(ctx, addr, p.ID, func(e event.Event) {
			n++
			if e.OutTradeNo != "" {
				out[e.OutTradeNo] = append(out[e.OutTradeNo], e)
			}
		}); err != nil {
			return nil, n, err
		}
	}
	return out, n, nil
}

func readPartition(ctx context.Context, addr string, partition int, fn func(event.Event)) error {
	pc, err := kafka.DialLeader(ctx, "tcp", addr, relay.DefaultTopic, partition)
	if err != nil {
		return fmt.Errorf("partition %d: %w", partition, err)
	}
	defer pc.Close()
	first, last, err := pc.ReadOffsets()
	if err != nil {
		return fmt.Errorf("partition %d offsets: %w", partition, err)
	}
	if _, err := pc.Seek(first, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("partition %d seek: %w", partition, err)
	}
	for off := first; off < last; {
		_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		batch := pc.ReadBatch(1, 16<<20)
		progressed := false
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			progressed = true
			off = m.Offset + 1
			e, err := event.Decode(m.Value)
			if err != nil {
				batch.Close()
				return fmt.Errorf("partition %d offset %d: %w", partition, m.Offset, err)
			}
			fn(e)
		}
		if err := batch.Close(); err != nil && !errors.Is(err, kafka.ErrGenerationEnded) && !progressed {
			return fmt.Errorf("partition %d at offset %d of %d: %w", partition, off, last, err)
		}
		if !progressed {
			return fmt.Errorf("partition %d: no progress at offset %d of %d", partition, off, last)
		}
	}
	return nil
}
