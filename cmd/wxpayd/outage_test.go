package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wxpayd/wxpayd/sink/itest"
)

// TestOutageKafkaWxpayd stops the real Kafka while wxpayd serves buyers:
// prepays and payment notifications must keep succeeding (events wait in
// the durable outbox), and once Kafka is back the outbox drains and
// ClickHouse holds exactly the events wxpayd recorded, each once.
//
// It stops the shared Kafka: `make test` runs TestOutage* alone, and
// itest.Outage keeps the tests that take the services through itest waiting.
func TestOutageKafkaWxpayd(t *testing.T) {
	itest.Outage(t)
	kafkaAddr, chAddr := itest.Kafka(t), itest.ClickHouse(t)
	topic := "wxpayd.outage." + strconv.FormatInt(time.Now().UnixNano(), 36)
	const adminToken = "outage-admin-token-0123456789"
	m := startMerchant(t, "v3", adminToken, []string{"--notify-speedup", "100"},
		"WXPAYD_KAFKA_BROKERS="+kafkaAddr, "WXPAYD_KAFKA_TOPIC="+topic, "WXPAYD_CLICKHOUSE_ADDR="+chAddr,
		"WXPAYD_LOG_LEVEL=warn")
	base := m.base
	hc := &http.Client{Timeout: 10 * time.Second}
	if st, b := call(hc, "PUT", base+"/admin/v1/skus/outage", adminToken, `{"description":"outage","price":300,"stock":1000}`); st != 200 {
		t.Fatalf("put sku: %d %s", st, b)
	}

	// One buyer by hand, so a refusal shows its reason.
	if st, b := call(hc, "POST", base+"/api/v1/login", "", `{"code":"code-probe"}`); st != 200 {
		t.Fatalf("login: %d %s", st, b)
	} else {
		var l struct{ Token string }
		_ = json.Unmarshal(b, &l)
		if st, b := call(hc, "POST", base+"/api/v1/orders", l.Token, `{"sku":"outage"}`); st != 201 {
			t.Fatalf("order: %d %s", st, b)
		}
	}
	var orders sync.Map
	buy := func(prefix string, n int) {
		t.Helper()
		var created, paid sync.Map
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				buyer(hc, base, m.sim.URL, fmt.Sprintf("%s-%d", prefix, i), "outage", adminToken, &created, &paid)
			}(i)
		}
		wg.Wait()
		nc, np := 0, 0
		created.Range(func(k, _ any) bool { nc++; orders.Store(k, true); return true })
		paid.Range(func(_, _ any) bool { np++; return true })
		// buyer() leaves some orders unpaid on purpose; every one must
		// still have been accepted.
		if nc != n {
			t.Fatalf("%s: %d of %d orders accepted", prefix, nc, n)
		}
		t.Logf("%s: %d orders, %d paid", prefix, nc, np)
	}
	buy("before", 20)

	kafka := func(cmd string) {
		t.Helper()
		out, err := exec.Command("bash", "../../deploy/local/kafka.sh", cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("kafka.sh %s: %v\n%s", cmd, err, out)
		}
	}
	kafka("stop")
	t.Cleanup(func() { _ = exec.Command("bash", "../../deploy/local/kafka.sh", "start").Run() })

	// Kafka is down: buyers still buy and pay, notifications are still
	// acknowledged, and the events wait in the outbox.
	buy("during", 30)
	if b := metric(t, hc, base, "wxpayd_outbox_backlog"); b <= 0 {
		t.Fatalf("outbox backlog %v while Kafka is down", b)
	}
	kafka("start")

	// Every event wxpayd recorded for these orders, by id.
	want := map[string]bool{}
	orders.Range(func(k, _ any) bool {
		_, b := call(hc, "GET", base+"/admin/v1/orders/"+k.(string), adminToken, "")
		var v struct {
			Events []struct {
				EventID string `json:"event_id"`
			} `json:"events"`
		}
		_ = json.Unmarshal(b, &v)
		for _, e := range v.Events {
			want[e.EventID] = true
		}
		return true
	})
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var otns []string
	orders.Range(func(k, _ any) bool { otns = append(otns, "'"+k.(string)+"'"); return true })
	q := "SELECT count(), uniqExact(event_id) FROM wxpayd.events FINAL WHERE out_trade_no IN (" + strings.Join(otns, ",") + ")"
	deadline := time.Now().Add(90 * time.Second)
	var rows, distinct uint64
	for {
		row := conn.QueryRow(context.Background(), q)
		if err := row.Scan(&rows, &distinct); err == nil && distinct == uint64(len(want)) && rows == distinct {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse holds %d rows, %d distinct events; wxpayd recorded %d (backlog %v)",
				rows, distinct, len(want), metric(t, hc, base, "wxpayd_outbox_backlog"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if b := metric(t, hc, base, "wxpayd_outbox_backlog"); b != 0 {
		t.Fatalf("backlog %v after Kafka came back", b)
	}
	t.Logf("Kafka outage: %d events recorded, all %d in ClickHouse exactly once", len(want), distinct)
}

var metricLine = regexp.MustCompile(`(?m)^([a-z_]+) ([0-9.eE+-]+)$`)

// metric reads one unlabelled gauge from /metrics.
func metric(t *testing.T, hc *http.Client, base, name string) float64 {
	t.Helper()
	st, b := call(hc, "GET", base+"/metrics", "", "")
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	for _, m := range metricLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	t.Fatalf("%s not exported", name)
	return 0
}
