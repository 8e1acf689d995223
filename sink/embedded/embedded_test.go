package embedded_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/sink/embedded"
)

func TestMessagesSurviveARestartOnTheSamePortAndDir(t *testing.T) {
	dir := t.TempDir()
	addrs, stop, err := embedded.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	if host != "127.0.0.1" || len(addrs) != 1 {
		t.Fatalf("addrs %v: want one loopback broker", addrs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: "auto-created", RequiredAcks: kafka.RequireAll,
		AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	for {
		err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("before the restart")})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // auto-creation: the first metadata may not list it yet
	}
	_ = w.Close()
	stop()

	p, _ := strconv.Atoi(port)
	addrs2, stop2, err := embedded.StartOn(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	if addrs2[0] != addrs[0] {
		t.Fatalf("restarted on %v, want %v", addrs2, addrs)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs2, Topic: "auto-created", GroupID: "g", StartOffset: kafka.FirstOffset,
		MaxWait: 50 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil || string(m.Value) != "before the restart" {
		t.Fatalf("after the restart: %q, %v", m.Value, err)
	}
}
