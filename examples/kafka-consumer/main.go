// Command kafka-consumer is what a shop's backend writes to follow wxpayd's
// order events on Kafka (docs/events.md; docs/architecture.md, "How a shop
// integrates"). It reads the order-events topic as a consumer group,
// decodes each message into its own Event struct, handles each event_id
// once, and commits a message's offset only after its event was handled:
// a crash or a rebalance makes the group read again what was not
// committed, so nothing is lost, and the dedupe on event_id turns that
// redelivery (and the relay's own at-least-once publishing) into one
// handling per event.
//
//	go run ./examples/kafka-consumer -brokers 127.0.0.1:9092 -group shop-orders
//
// The flags default to KAFKA_BROKERS (comma-separated), KAFKA_TOPIC
// (wxpayd.order-events, wxpayd's WXPAYD_KAFKA_TOPIC) and KAFKA_GROUP
// (shop-orders). Give the shop its own group: wxpayd's ClickHouse sink reads
// the same topic as the group wxpayd-sink, and each group gets every event.
// wxpayd must publish to that Kafka (WXPAYD_KAFKA_BROKERS): its embedded
// broker listens on a random loopback port for the process itself.
//
// Events of one order share a key (out_trade_no), hence a partition, and
// arrive in seq order; this program handles one message at a time, so it
// keeps that order. It stops on SIGINT or SIGTERM (exit 0), and on a
// message of a schema version it does not know (exit 1): that message is
// not committed, so the upgraded program reads it again.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// Event is an order event of version 1 as docs/events.md defines it, with
// the fields this shop reads. New fields may appear within version 1:
// encoding/json ignores them. An absent field reads as 0 or "".
type Event struct {
	V             int    `json:"v"`
	EventID       string `json:"event_id"`
	Type          string `json:"type"`
	OutTradeNo    string `json:"out_trade_no"`
	Seq           uint64 `json:"seq"`
	TsMs          int64  `json:"ts_ms"`
	State         string `json:"state"`
	SKU           string `json:"sku"`
	Quantity      int64  `json:"quantity"`
	OpenID        string `json:"openid"`
	Amount        int64  `json:"amount"`
	RefundAmount  int64  `json:"refund_amount"`
	RefundedTotal int64  `json:"refunded_total"`
	TransactionID string `json:"transaction_id"`
	OutRefundNo   string `json:"out_refund_no"`
	Reason        string `json:"reason"`
	Alert         string `json:"alert"`
	ShopOrderID   string `json:"shop_order_id"`
	Attach        string `json:"attach"`
}

var (
	// errNotEvent: the message is not a version-1 event (not JSON, or
	// without event_id, type or ts_ms). wxpayd never publishes one.
	errNotEvent = errors.New("not an order event")
	// errVersion: the event has a schema version this program does not
	// know; reading it as version 1 could misread it.
	errVersion = errors.New("unknown event schema version")
)

// decode reads one message's value.
func decode(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", errNotEvent, err)
	}
	if e.V != 1 {
		return e, fmt.Errorf("%w: v=%d", errVersion, e.V)
	}
	if e.EventID == "" || e.Type == "" || e.TsMs <= 0 {
		return e, fmt.Errorf("%w: event_id, type and ts_ms are required", errNotEvent)
	}
	return e, nil
}

// Handler does what the shop does with one event. An error means "not
// done": the same event is handed to it again after a wait, and nothing
// after it is read meanwhile.
type Handler func(ctx context.Context, e Event) error

// Config configures Run.
type Config struct {
	Brokers []string
	Topic   string
	Group   string
	// Retry is the first wait after a failed handling; it doubles up to
	// 30 s (default 1 s).
	Retry time.Duration
	Log   *slog.Logger
}

// seen is the set of event_ids already handled, the last max of them.
// A shop keeps this in its database instead, written in the same
// transaction as the event's effect (a table with a unique key on
// event_id, or the order's last handled seq): then a crash between the
// effect and the commit cannot handle the event twice. In memory, as here,
// it covers the duplicates one run reads.
type seen struct {
	ids  map[string]struct{}
	ring []string
	next int
}

func newSeen(max int) *seen {
	return &seen{ids: make(map[string]struct{}, max), ring: make([]string, max)}
}

func (s *seen) has(id string) bool { _, ok := s.ids[id]; return ok }

func (s *seen) add(id string) {
	delete(s.ids, s.ring[s.next]) // forget the oldest
	s.ring[s.next] = id
	s.ids[id] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
}

// Run consumes until ctx ends (then it returns nil) or something fails
// that retrying the handler cannot fix.
func Run(ctx context.Context, cfg Config, h Handler) error {
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     cfg.Brokers,
		Topic:       cfg.Topic,
		GroupID:     cfg.Group,
		StartOffset: kafka.FirstOffset, // a new group starts from the oldest event Kafka keeps
		MaxWait:     500 * time.Millisecond,
		// CommitInterval 0: CommitMessages commits before it returns.
	})
	defer r.Close()
	done := newSeen(100_000)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch: %w", err)
		}
		e, err := decode(m.Value)
		switch {
		case errors.Is(err, errVersion):
			return fmt.Errorf("partition %d offset %d: %w: upgrade this program", m.Partition, m.Offset, err)
		case err != nil:
			cfg.Log.Warn("skipping a message", "partition", m.Partition, "offset", m.Offset, "err", err)
		case done.has(e.EventID):
			cfg.Log.Debug("duplicate", "event_id", e.EventID)
		default:
			if !handle(ctx, cfg, h, e) {
				return nil // ctx ended: the message stays uncommitted
			}
			done.add(e.EventID)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("commit: %w", err)
		}
	}
}

// handle calls h until it succeeds; false if ctx ended first.
func handle(ctx context.Context, cfg Config, h Handler, e Event) bool {
	wait := cfg.Retry
	for {
		err := h(ctx, e)
		if err == nil {
			return true
		}
		cfg.Log.Warn("handling failed: retrying", "event_id", e.EventID, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// shop is the example's handler: it says what a shop does for the events
// webhooks deliver by default. A real one updates its orders here.
func shop(log *slog.Logger) Handler {
	return func(_ context.Context, e Event) error {
		order := []any{"out_trade_no", e.OutTradeNo, "shop_order_id", e.ShopOrderID, "seq", e.Seq}
		switch e.Type {
		case "order.paid":
			if strings.HasPrefix(e.Alert, "paid after ") {
				// The shop may have given this order up: fulfil or refund it.
				log.Warn("paid after it was closed", append(order, "amount", e.Amount, "alert", e.Alert)...)
				return nil
			}
			log.Info("paid: fulfil", append(order, "amount", e.Amount, "transaction_id", e.TransactionID)...)
		case "order.closed":
			log.Info("closed unpaid: release the cart", order...)
		case "order.refunded":
			log.Info("refunded", append(order, "refund_amount", e.RefundAmount, "refunded_total", e.RefundedTotal)...)
		case "order.refund_failed":
			log.Warn("refund failed", append(order, "out_refund_no", e.OutRefundNo, "reason", e.Reason)...)
		}
		return nil
	}
}

func main() { os.Exit(run()) }

// run is main with an exit code: 0 after SIGINT or SIGTERM, 1 when Run
// failed, 2 for bad flags.
func run() int {
	fs := flag.NewFlagSet("kafka-consumer", flag.ContinueOnError)
	brokers := fs.String("brokers", os.Getenv("KAFKA_BROKERS"), "comma-separated Kafka brokers (env KAFKA_BROKERS)")
	topic := fs.String("topic", envOr("KAFKA_TOPIC", "wxpayd.order-events"), "order-events topic (env KAFKA_TOPIC)")
	group := fs.String("group", envOr("KAFKA_GROUP", "shop-orders"), "consumer group (env KAFKA_GROUP)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *brokers == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "kafka-consumer: -brokers (or KAFKA_BROKERS) is required and no arguments are taken")
		return 2
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := Config{Brokers: strings.Split(*brokers, ","), Topic: *topic, Group: *group, Log: log}
	if err := Run(ctx, cfg, shop(log)); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
