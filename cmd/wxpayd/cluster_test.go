package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wxpayd/wxpayd/actors/cluster"
	"github.com/wxpayd/wxpayd/bench/rig"
	"github.com/wxpayd/wxpayd/sink/itest"
)

const clusterAdmin = "cluster-admin-token-0123456789"

// clusterNode is one wxpayd process of the test cluster.
type clusterNode struct {
	shard, base string
	cmd         rig.Cmd
	proc        *rig.Process // nil until the first launch
}

// launch starts the node, or starts it again on its data directory after
// kill.
func (n *clusterNode) launch(t *testing.T) {
	t.Helper()
	if n.proc == nil {
		n.proc = rig.Start(t, n.cmd)
	} else if err := n.proc.Restart(); err != nil {
		t.Fatal(err)
	}
}

// kill SIGKILLs the node.
func (n *clusterNode) kill() { n.proc.Kill() }

func (n *clusterNode) waitReady(t *testing.T) {
	t.Helper()
	n.proc.WaitReady(t, n.base+"/readyz", 15*time.Second)
}

// launchAll starts the nodes all at once, as a StatefulSet with Parallel
// pod management starts them, and waits until each is ready: when every
// shard has joined.
func launchAll(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	for _, n := range nodes {
		n.launch(t)
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
}

// TestClusterFlashSale runs three wxpayd nodes (shards 01, 02, 03) and
// wxpaysim on loopback, each node with its own data directory and
// embedded Kafka broker (or the real Kafka and ClickHouse when KAFKA_ADDR
// and CLICKHOUSE_ADDR are set: not wired here, see the log line). Buyers
// are spread round-robin over the nodes; every order is read through
// another node than the one that created it; every notification goes to
// node 01, which routes it to the order's shard. Node 02 is SIGKILLed mid-
// run: shards 01 and 03 keep selling, a payment notification for a shard-02
// order gets a 5xx while it is down, and after its restart that order
// becomes PAID. Audit: per SKU sold+reserved <= stock and sold = PAID
// orders of that SKU over the whole cluster; every payment the simulator
// took is PAID exactly once.
func TestClusterFlashSale(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: real binaries, ~40 s")
	}
	// Events: with the real services (always under make test) every node
	// publishes to one run-unique topic on the real Kafka, node 01 runs the
	// sink into the real ClickHouse, and the audit counts paid events there.
	kafkaAddr, chAddr := itest.Optional(t) // both required with WXPAYD_INTEGRATION=1
	real := kafkaAddr != "" && chAddr != ""
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	if real {
		t.Logf("events: real Kafka %s (topic wxpayd.cluster.%s) and ClickHouse %s", kafkaAddr, runID, chAddr)
	} else {
		t.Log("events: each node runs its embedded Kafka-protocol broker; no ClickHouse audit (set KAFKA_ADDR and CLICKHOUSE_ADDR)")
	}
	shards := []string{"01", "02", "03"}
	extra := []string{"WXPAYD_LOG_LEVEL=info", "WXPAYD_CLUSTER_TIMEOUT=2s", "WXPAYD_CLUSTER_RECONCILE_AFTER=5s"}
	if real {
		extra = append(extra, "WXPAYD_KAFKA_BROKERS="+kafkaAddr, "WXPAYD_KAFKA_TOPIC=wxpayd.cluster."+runID)
	}
	nodes, sim := newTestCluster(t, shards, extra...)
	if real {
		nodes[0].cmd.Env = append(nodes[0].cmd.Env, "WXPAYD_CLICKHOUSE_ADDR="+chAddr) // one sink for the cluster
	}
	launchAll(t, nodes)
	hc := &http.Client{Timeout: 5 * time.Second}

	// One SKU owned by each shard; each is PUT through a node that does
	// not own it, once the cluster has formed.
	const stock = 700
	skuOf := map[string]string{}
	for i := 0; len(skuOf) < len(shards); i++ {
		sku := "flash-" + runID + "-" + strconv.Itoa(i) // unique per run: ClickHouse is shared
		if o := cluster.Owner(sku, shards); skuOf[o] == "" {
			skuOf[o] = sku
		}
	}
	var skus []string
	for i, s := range shards {
		sku := skuOf[s]
		skus = append(skus, sku)
		via := nodes[(i+1)%len(nodes)]
		rig.Eventually(t, 20*time.Second, "put "+sku, func() bool {
			st, _ := call(hc, "PUT", via.base+"/admin/v1/skus/"+sku, clusterAdmin, fmt.Sprintf(`{"description":"flash %s","price":100,"stock":%d}`, s, stock))
			return st == 200
		})
	}
	t.Logf("SKU owners: %v", skuOf)

	var (
		created, simPaid sync.Map     // otn → sku
		phase            atomic.Int32 // 0 all up, 1 node 02 down, 2 restarted
		downOK           [3]atomic.Int64
		held             = make(chan heldOrder, 16) // shard-02 orders left unpaid, paid while 02 is down
		stopLoad         = make(chan struct{})
		wg               sync.WaitGroup
		seq              atomic.Int64
	)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				k := int(seq.Add(1))
				node := nodes[k%3]
				if phase.Load() == 1 && node.shard == "02" {
					node = nodes[(k+1)%3]
				}
				other := nodes[(indexOf(nodes, node)+1)%3]
				if phase.Load() == 1 && other.shard == "02" {
					other = nodes[(indexOf(nodes, node)+2)%3]
				}
				sku := skus[(k/3)%3]
				o, ok := clusterBuy(hc, node, other, sim.URL, fmt.Sprintf("c%d-%d", w, i), sku, held, &created, &simPaid)
				if ok && phase.Load() == 1 && o != "" {
					downOK[indexOf(nodes, node)].Add(1)
				}
			}
		}(w)
	}

	time.Sleep(3 * time.Second)
	if len(held) == 0 {
		t.Fatal("no shard-02 order was held for the outage check")
	}
	// SIGKILL node 02.
	b := nodes[1]
	b.kill()
	phase.Store(1)
	t.Log("node 02 killed")
	// Its held orders are paid at WeChat now: the notifications reach
	// node 01 and must be refused with a 5xx until 02 is back.
	var heldPaid []heldOrder
	for len(held) > 0 && len(heldPaid) < 3 {
		h := <-held
		body := fmt.Sprintf(`{"prepay_id":%q,"openid":%q}`, h.prepayID, h.openid)
		if st, _ := call(hc, "POST", sim.URL+"/sim/v1/pay", "", body); st == 201 {
			simPaid.Store(h.otn, h.sku)
			heldPaid = append(heldPaid, h)
		}
	}
	if len(heldPaid) == 0 {
		t.Fatal("could not pay a shard-02 order while node 02 was down")
	}
	rig.Eventually(t, 10*time.Second, "a 5xx for a shard-02 notification", func() bool {
		return simSaw5xx(hc, sim.URL, heldPaid[0].otn)
	})
	time.Sleep(3 * time.Second)
	for i, n := range nodes {
		t.Logf("while 02 was down, node %s completed %d purchases", n.shard, downOK[i].Load())
	}
	if downOK[0].Load() == 0 || downOK[2].Load() == 0 {
		t.Errorf("shards 01 and 03 must keep selling while 02 is down")
	}
	b.launch(t)
	b.waitReady(t)
	phase.Store(2)
	t.Log("node 02 restarted")
	// Sell out: run until every SKU has nothing left (bounded).
	sellOut := time.Now().Add(25 * time.Second)
	for time.Now().Before(sellOut) {
		left := int64(0)
		for _, sku := range skus {
			var v struct{ Left int64 }
			st, body := call(hc, "GET", nodes[0].base+"/admin/v1/skus/"+sku, clusterAdmin, "")
			if st != 200 || json.Unmarshal(body, &v) != nil {
				v.Left = 1
			}
			left += v.Left
		}
		if left == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stopLoad)
	wg.Wait()

	// Orders of shard 02 paid during the outage are PAID now (WeChat's
	// retries reach node 01, which routes them to the restarted 02).
	for _, h := range heldPaid {
		rig.Eventually(t, 30*time.Second, h.otn+" PAID after 02's restart", func() bool {
			return orderState(hc, nodes[0], h.otn) == "PAID"
		})
	}

	// Audit.
	var nCreated, nPaid int
	created.Range(func(_, _ any) bool { nCreated++; return true })
	simPaid.Range(func(_, _ any) bool { nPaid++; return true })
	t.Logf("%d orders acknowledged, %d paid at the simulator", nCreated, nPaid)
	paidPerSKU := map[string]int64{}
	deadline := time.Now().Add(30 * time.Second)
	created.Range(func(k, v any) bool {
		otn, sku := k.(string), v.(string)
		_, wantPaid := simPaid.Load(otn)
		via := nodes[int(seq.Add(1))%3]
		if auditOrder(t, hc, via.base, clusterAdmin, otn, wantPaid, deadline) == "PAID" {
			paidPerSKU[sku]++
		}
		return true
	})
	for i, sku := range skus {
		var view struct{ Stock, Left, Reserved, Sold int64 }
		rig.Eventually(t, 30*time.Second, sku+" sold = PAID orders", func() bool {
			st, body := call(hc, "GET", nodes[(i+2)%3].base+"/admin/v1/skus/"+sku, clusterAdmin, "")
			if st != 200 || json.Unmarshal(body, &view) != nil {
				return false
			}
			return view.Sold == paidPerSKU[sku]
		})
		t.Logf("%s (owner %s): %+v, PAID orders %d", sku, shards[i], view, paidPerSKU[sku])
		if view.Sold+view.Reserved > stock || view.Left != stock-view.Sold-view.Reserved {
			t.Errorf("%s oversold or inconsistent: %+v", sku, view)
		}
	}
	if !real {
		return
	}
	// ClickHouse: every PAID order's order.paid event exactly once, from
	// all three nodes' outboxes (node 02's across its SIGKILL).
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, sku := range skus {
		var rows, distinct uint64
		ok := false
		for end := time.Now().Add(90 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			err := conn.QueryRow(context.Background(),
				"SELECT count(), uniqExact(out_trade_no) FROM wxpayd.events FINAL WHERE type = 'order.paid' AND sku = ?", sku).Scan(&rows, &distinct)
			if err == nil && distinct == uint64(paidPerSKU[sku]) && rows == distinct {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("%s: ClickHouse has %d order.paid rows for %d orders; wxpayd has %d PAID", sku, rows, distinct, paidPerSKU[sku])
			continue
		}
		t.Logf("%s: ClickHouse has exactly %d order.paid events, one per PAID order", sku, distinct)
	}
}

type heldOrder struct{ otn, sku, prepayID, openid string }

// clusterBuy logs in and orders on node, reads the order back through
// other, and pays at the simulator (shard-02 orders are sometimes held
// back instead, for the outage check).
func clusterBuy(hc *http.Client, node, other *clusterNode, simURL, name, sku string, held chan heldOrder, created, simPaid *sync.Map) (string, bool) {
	st, b := call(hc, "POST", node.base+"/api/v1/login", "", `{"code":"code-`+name+`"}`)
	if st != 200 {
		return "", false
	}
	var login struct{ Token string }
	_ = json.Unmarshal(b, &login)
	st, b = call(hc, "POST", node.base+"/api/v1/orders", login.Token, `{"sku":"`+sku+`"}`)
	if st == 409 {
		return "", true // sold out: an answer
	}
	if st != 201 {
		return "", false
	}
	var o struct {
		OutTradeNo string `json:"out_trade_no"`
		Payment    struct {
			Package string `json:"package"`
		} `json:"payment"`
	}
	_ = json.Unmarshal(b, &o)
	created.Store(o.OutTradeNo, sku)
	// The buyer reads the order through another node.
	if st, _ = call(hc, "GET", other.base+"/api/v1/orders/"+o.OutTradeNo, login.Token, ""); st != 200 {
		return o.OutTradeNo, false
	}
	st, b = call(hc, "GET", other.base+"/admin/v1/orders/"+o.OutTradeNo, clusterAdmin, "")
	if st != 200 {
		return o.OutTradeNo, false
	}
	var full struct {
		Order struct {
			OpenID string `json:"openid"`
		} `json:"order"`
	}
	_ = json.Unmarshal(b, &full)
	prepay := strings.TrimPrefix(o.Payment.Package, "prepay_id=")
	if cluster.ShardOf(o.OutTradeNo) == "02" {
		select {
		case held <- heldOrder{o.OutTradeNo, sku, prepay, full.Order.OpenID}:
			return o.OutTradeNo, true
		default:
		}
	}
	body := fmt.Sprintf(`{"prepay_id":%q,"openid":%q}`, prepay, full.Order.OpenID)
	if st, _ = call(hc, "POST", simURL+"/sim/v1/pay", "", body); st == 201 {
		simPaid.Store(o.OutTradeNo, sku)
	}
	return o.OutTradeNo, true
}

func simSaw5xx(hc *http.Client, simURL, otn string) bool {
	_, b := call(hc, "GET", simURL+"/sim/v1/orders/"+otn, "", "")
	var v struct {
		Notifications []struct {
			Attempts []struct {
				Status int `json:"status"`
			} `json:"attempts"`
		} `json:"notifications"`
	}
	_ = json.Unmarshal(b, &v)
	for _, n := range v.Notifications {
		for _, a := range n.Attempts {
			if a.Status >= 500 {
				return true
			}
		}
	}
	return false
}

func orderState(hc *http.Client, n *clusterNode, otn string) string {
	_, b := call(hc, "GET", n.base+"/admin/v1/orders/"+otn, clusterAdmin, "")
	var v struct {
		Order struct {
			State string `json:"state"`
		} `json:"order"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Order.State
}

// newTestCluster prepares a cluster of shards on loopback: a development
// identity whose notifications go to the first node, a running wxpaysim,
// and each node's command, its environment with extra appended, its data
// in dir/nodeNN and its log in dir/wxpayd-NN.log. The nodes are not
// started.
func newTestCluster(t *testing.T, shards []string, extra ...string) ([]*clusterNode, *rig.Sim) {
	t.Helper()
	dir := t.TempDir()
	bin := rig.Build(t, "./cmd/wxpayd", "./cmd/wxpaysim")
	var httpAddr, remote, health []string
	for range shards {
		httpAddr, remote, health = append(httpAddr, rig.FreeAddr(t)), append(remote, rig.FreeAddr(t)), append(health, rig.FreeAddr(t))
	}
	sim := rig.StartSim(t, bin["wxpaysim"], dir, "v3", httpAddr[0], "--notify-speedup", "300")
	common := append([]string{"WXPAYD_CLUSTER_SHARDS=" + strings.Join(shards, ","), "WXPAYD_CLUSTER_MEMBERS=" + strings.Join(health, ",")}, extra...)
	nodes := make([]*clusterNode, len(shards))
	for i, s := range shards {
		_, hp, _ := net.SplitHostPort(health[i])
		env := sim.WxpaydEnv(t, filepath.Join(dir, "node"+s), httpAddr[i], clusterAdmin, slices.Concat(common,
			[]string{"WXPAYD_SHARD=" + s, "WXPAYD_CLUSTER_LISTEN=" + remote[i], "WXPAYD_CLUSTER_HEALTH_PORT=" + hp})...)
		nodes[i] = &clusterNode{shard: s, base: "http://" + httpAddr[i],
			cmd: rig.Cmd{Path: bin["wxpayd"], Env: env, Log: filepath.Join(dir, "wxpayd-"+s+".log")}}
	}
	return nodes, sim
}

func indexOf(nodes []*clusterNode, n *clusterNode) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// TestClusterReadinessWaitsForFormation starts one node of a two-shard
// cluster whose peer never comes: /healthz answers at once, /readyz only
// after WXPAYD_CLUSTER_FORM_TIMEOUT, and then the node serves its own shard.
func TestClusterReadinessWaitsForFormation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	const wait = 3 * time.Second
	nodes, _ := newTestCluster(t, []string{"01", "02"}, "WXPAYD_CLUSTER_FORM_TIMEOUT="+wait.String())
	n := nodes[0]
	started := time.Now()
	n.launch(t) // node 02 never starts
	n.proc.WaitReady(t, n.base+"/healthz", 15*time.Second)
	hc := &http.Client{Timeout: time.Second}
	status := func() int {
		resp, err := hc.Get(n.base + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := status(); st != http.StatusServiceUnavailable && time.Since(started) < wait {
		t.Fatalf("/readyz %d before the cluster formed and before the formation timeout", st)
	}
	n.waitReady(t)
	if d := time.Since(started); d < wait {
		t.Fatalf("ready after %v: before the %v formation timeout, with shard 02 missing", d, wait)
	}
	if log := n.proc.Logs(); !strings.Contains(log, "cluster incomplete after the formation timeout") || !strings.Contains(log, `"missing":["02"]`) {
		t.Fatal("no log line naming the missing shard")
	}
}

// TestClusterLostCommitIsReconciled loses a cross-node stock commit: an
// order of node 01 holds a unit of a SKU that node 02 owns; 02 goes down,
// the order is paid (01 acknowledges the notification and queues the
// commit for 02 in memory), then 01 is SIGKILLed with the commit unsent.
// After both return, 02's reconciliation must ask 01 and count the unit
// sold: no unit stays reserved, none is sold twice.
func TestClusterLostCommitIsReconciled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	shards := []string{"01", "02"}
	nodes, sim := newTestCluster(t, shards,
		"WXPAYD_CLUSTER_TIMEOUT=1s", "WXPAYD_CLUSTER_RECONCILE_AFTER=2s", "WXPAYD_CLUSTER_FORM_TIMEOUT=5s")
	launchAll(t, nodes)
	hc := &http.Client{Timeout: 5 * time.Second}
	sku := ""
	for i := 0; sku == ""; i++ {
		if s := "lost-" + strconv.Itoa(i); cluster.Owner(s, shards) == "02" {
			sku = s
		}
	}
	a, b := nodes[0], nodes[1]
	if st, body := call(hc, "PUT", a.base+"/admin/v1/skus/"+sku, clusterAdmin, `{"description":"one","price":100,"stock":1}`); st != 200 {
		t.Fatalf("put %s through 01: %d %s", sku, st, body)
	}
	st, body := call(hc, "POST", a.base+"/api/v1/login", "", `{"code":"code-lost"}`)
	var login struct{ Token string }
	if st != 200 || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login: %d %s", st, body)
	}
	st, body = call(hc, "POST", a.base+"/api/v1/orders", login.Token, `{"sku":"`+sku+`"}`)
	var o struct {
		OutTradeNo string `json:"out_trade_no"`
		Payment    struct {
			Package string `json:"package"`
		} `json:"payment"`
	}
	if st != 201 || json.Unmarshal(body, &o) != nil || cluster.ShardOf(o.OutTradeNo) != "01" {
		t.Fatalf("order on 01: %d %s", st, body)
	}
	_, body = call(hc, "GET", a.base+"/admin/v1/orders/"+o.OutTradeNo, clusterAdmin, "")
	var full struct {
		Order struct {
			OpenID string `json:"openid"`
		} `json:"order"`
	}
	_ = json.Unmarshal(body, &full)

	b.kill() // the owner goes down with the unit held for 01's order
	pay := fmt.Sprintf(`{"prepay_id":%q,"openid":%q}`, strings.TrimPrefix(o.Payment.Package, "prepay_id="), full.Order.OpenID)
	if st, body := call(hc, "POST", sim.URL+"/sim/v1/pay", "", pay); st != 201 {
		t.Fatalf("pay: %d %s", st, body)
	}
	rig.Eventually(t, 20*time.Second, "01 acknowledges the payment while 02 is down", func() bool {
		return orderState(hc, a, o.OutTradeNo) == "PAID"
	})
	a.kill() // the commit for 02 was only queued in 01's memory
	b.launch(t)
	time.Sleep(3 * time.Second) // 02 reconciles while 01 is down: asking fails, the hold stays
	a.launch(t)
	for _, n := range nodes {
		n.waitReady(t)
	}
	var v struct{ Stock, Left, Reserved, Sold int64 }
	rig.Eventually(t, 30*time.Second, "the unit counted sold on the owner", func() bool {
		st, body := call(hc, "GET", b.base+"/admin/v1/skus/"+sku, clusterAdmin, "")
		return st == 200 && json.Unmarshal(body, &v) == nil && v.Sold == 1 && v.Reserved == 0
	})
	if v.Left != 0 || v.Stock != 1 {
		t.Fatalf("SKU after reconciliation: %+v", v)
	}
	if s := orderState(hc, b, o.OutTradeNo); s != "PAID" {
		t.Fatalf("order read through 02: %q", s)
	}
	// The owner's reconciliation settled it: nothing else knew of the hold.
	if !strings.Contains(b.proc.Logs(), "cluster: reconciled holds") {
		t.Fatal("node 02 did not reconcile the hold")
	}
}
