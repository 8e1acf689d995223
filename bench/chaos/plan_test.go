package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// The plan is every random choice of a run, made up front by one PCG seeded
// from CHAOS_SEED: the catalogue, each buyer's (or shop's) script and
// timing, the fault phases, the kill moments and wxpaysim's own seed.
// Executing it makes no random choice, so a seed replays the same plan.

type skuPlan struct {
	name                string
	price, stock, limit int64
}

// params are a create request's body.
type params struct {
	sku string
	qty int64
}

func (p params) String() string { return fmt.Sprintf("%s×%d", p.sku, p.qty) }

type scriptKind uint8

const (
	kindHonest   scriptKind = iota // log in, buy with a key, pay now, late, twice or never; maybe refunds
	kindSameKey                    // 2–4 concurrent creates with ONE key, some with other bodies
	kindManyKeys                   // 2–4 concurrent creates with different keys against a per-buyer limit
	kindCheckout                   // the shop's backend: 2–4 concurrent checkouts of one shop order id, some with other fields
)

func (k scriptKind) String() string {
	return [...]string{"honest", "same-key race", "many-keys race", "checkout"}[k]
}

// checkoutPlan is one POST /api/v1/checkouts as drawn: the fields that
// vary between a shop order id's requests. The description, line items and
// expires_in are the script's, the same in each.
type checkoutPlan struct {
	other   bool // for another buyer than the script's (an openid of wx.login user <buyer>-other)
	session bool // the buyer given as its session token, else as its openid (the same buyer either way)
	amount  int64
	attach  string
}

// sameFields reports whether c and d ask for the same order: the form the
// buyer is given in does not matter.
func (c checkoutPlan) sameFields(d checkoutPlan) bool {
	return c.other == d.other && c.amount == d.amount && c.attach == d.attach
}

type payMode uint8

const (
	payNow   payMode = iota // pay after a short think time
	payLate                 // pay around the order's TTL (some before, some after it)
	payNever                // abandon the order
	payTwice                // pay, then pay again
)

type refundKind uint8

const (
	refundNone            refundKind = iota
	refundFull                       // the whole amount
	refundPartial                    // part of it
	refundTwoConcurrent              // two partial refunds at once, no key
	refundSameKeyRace                // 2–3 identical requests with one Idempotency-Key at once
	refundPartialThenRest            // part, then (once it settled) the rest
	refundOver                       // more than was paid: must be refused, nothing refunded
	refundRetryKey                   // one keyed request, then the same again (a retry)
)

func (k refundKind) String() string {
	return [...]string{"none", "full", "partial", "two concurrent partials", "same-key race", "partial then rest",
		"over-refund", "keyed retry"}[k]
}

type script struct {
	id     int
	at     time.Duration // start, since the workload began
	kind   scriptKind
	buyer  string        // the wx.login user
	reqs   []params      // honest: one; races: the concurrent requests
	reuse  *params       // honest: the same key again with this other body after the order exists (expects 422)
	pay    payMode       // honest, checkout
	think  time.Duration // payNow/payTwice: before paying; races: before paying the won order
	lateBy time.Duration // payLate: offset from expires_at (negative: before the TTL)
	payWon []bool        // races: whether the buyer pays each order it got (by request index)

	// checkout: the concurrent requests for the script's shop order id (the
	// first is the shop's, the others its retries, some with other fields),
	// a retry after the order was paid or abandoned, the line items' SKUs
	// (catalogue SKUs, whose stock a checkout must not touch) and expires_in.
	shop      []checkoutPlan
	shopLate  *checkoutPlan // nil: none
	lines     []string      // nil: no line items
	expiresIn int64         // seconds; 0: not sent (wxpayd's order TTL)

	refund      refundKind    // honest, checkout
	refundAfter time.Duration // after the payment
	fracs       [2]float64    // partial shares of the total
	racers      int           // refundSameKeyRace: concurrent copies
	applyAbn    bool          // apply for refunds that end ABNORMAL (to the merchant's account)
}

type faultPhase struct {
	at       time.Duration
	name     string
	faults   string // wxpaysim --faults SPEC
	outcomes string // --refund-outcomes SPEC
}

type plan struct {
	seed      uint64
	simSeed   uint64
	skus      []skuPlan
	scripts   []script
	kills     []time.Duration
	phases    []faultPhase
	load      time.Duration // scripts start before this
	faultsOff time.Duration // faults end here; timers settle after
	duration  time.Duration
}

// Fault rates. "Low" is what wxpaysim starts with so the run gets going;
// "moderate" is most of the run; a "storm" phase doubles it for a while.
const (
	faultsLow      = "all.system_error=0.01,all.rate_limited=0.01,all.bad_gateway=0.01,all.slow=0.01,all.lost=0.01"
	faultsModerate = "all.system_error=0.04,all.rate_limited=0.03,all.bad_gateway=0.03,all.slow=0.02,all.lost=0.05"
	faultsStorm    = "all.system_error=0.08,all.rate_limited=0.06,all.bad_gateway=0.06,all.slow=0.04,all.lost=0.10"
	refundOutcomes = "success=0.8,closed=0.1,abnormal=0.1"
)

// scriptsPerSecond is the arrival rate of buyer scripts: modest, since two
// shared cores run wxpayd, wxpaysim and the workload.
const scriptsPerSecond = 4

// checkoutPercent is the share of scripts that buy through the shop's
// checkout instead of the catalogue.
const checkoutPercent = 20

// makePlan draws the run's plan. settle is how long the timers need after
// the last order is created (the order TTL or the close grace, whichever is
// longer, plus a margin).
func makePlan(seed uint64, duration time.Duration, kills int, settle time.Duration) (*plan, error) {
	p := &plan{seed: seed, duration: duration}
	p.faultsOff = duration - 30*time.Second
	p.load = p.faultsOff - settle
	if p.load < 20*time.Second {
		return nil, fmt.Errorf("CHAOS_DURATION %v is too short: the timers need %v after the last order and 30 s to settle, leaving %v of workload (want ≥ 20 s)",
			duration, settle, p.load)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p.simSeed = rng.Uint64() | 1
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	chance := func(x float64) bool { return rng.Float64() < x }

	n := int(p.load.Seconds() * scriptsPerSecond)
	p.skus = []skuPlan{
		{"chaos-plenty", 100, int64(2 * n), 0},
		{"chaos-scarce", 257, int64(n/8 + 4), 2},
		{"chaos-one", 1999, int64(n/20 + 3), 1},
		{"chaos-penny", 1, int64(n/4 + 4), 3},
	}
	pickSKU := func() string {
		switch x := rng.IntN(100); {
		case x < 40:
			return p.skus[0].name
		case x < 65:
			return p.skus[1].name
		case x < 80:
			return p.skus[2].name
		default:
			return p.skus[3].name
		}
	}
	pickQty := func() int64 {
		if chance(0.8) {
			return 1
		}
		return 2 + rng.Int64N(2)
	}
	other := func(a params) params { // a different body: another SKU or another quantity
		for {
			b := a
			if chance(0.5) {
				b.sku = pickSKU()
			} else {
				b.qty = 1 + rng.Int64N(3)
			}
			if b != a {
				return b
			}
		}
	}
	otherCheckout := func(c checkoutPlan) checkoutPlan { // another amount, attach or buyer
		switch rng.IntN(3) {
		case 0:
			c.amount += 1 + rng.Int64N(100)
		case 1:
			c.attach += "-" + strconv.Itoa(1+rng.IntN(9))
		default:
			c.other, c.session = !c.other, false
		}
		return c
	}
	// A checkout's expires_in stays within the settling time, so its order
	// is closed before the audit as the catalogue's are.
	maxExpiresIn := min(int64((settle-5*time.Second)/time.Second), 7200)
	payment := func(s *script) { // how an honest buyer or a checkout's buyer pays, and the refunds
		switch y := rng.IntN(100); {
		case y < 60:
			s.pay = payNow
		case y < 70:
			s.pay = payLate
		case y < 90:
			s.pay = payNever
		default:
			s.pay = payTwice
		}
		s.think = between(100*time.Millisecond, 3*time.Second)
		s.lateBy = between(-4*time.Second, 3*time.Second)
		if s.pay != payNever && chance(0.45) {
			switch z := rng.IntN(100); {
			case z < 18:
				s.refund = refundFull
			case z < 36:
				s.refund = refundPartial
			case z < 51:
				s.refund = refundTwoConcurrent
			case z < 66:
				s.refund = refundSameKeyRace
			case z < 81:
				s.refund = refundPartialThenRest
			case z < 88:
				s.refund = refundOver
			default:
				s.refund = refundRetryKey
			}
			s.refundAfter = between(200*time.Millisecond, 6*time.Second)
			s.fracs = [2]float64{0.1 + 0.3*rng.Float64(), 0.1 + 0.3*rng.Float64()}
			s.racers = 2 + rng.IntN(2)
			s.applyAbn = chance(0.7)
		}
	}

	for i := 0; i < n; i++ {
		s := script{id: i, at: time.Duration(float64(p.load) * (float64(i) + rng.Float64()) / float64(n)), buyer: fmt.Sprintf("cb%d", i)}
		// The catalogue's kinds keep their shares among the rest: 70%
		// honest, 15% each race.
		switch x := rng.IntN(100); {
		case x < checkoutPercent:
			s.kind = kindCheckout
			first := checkoutPlan{session: chance(0.5), amount: 1 + rng.Int64N(5000), attach: fmt.Sprintf("cart-%d", i)}
			s.shop = []checkoutPlan{first}
			for k := 1 + rng.IntN(3); k > 0; k-- {
				c := first
				if chance(0.4) {
					c = otherCheckout(first)
				}
				c.session = !c.other && chance(0.5)
				s.shop = append(s.shop, c)
			}
			if chance(0.3) {
				late := first
				if chance(0.5) {
					late = otherCheckout(first)
				}
				late.session = !late.other && chance(0.5)
				s.shopLate = &late
			}
			if chance(0.5) {
				for k := 1 + rng.IntN(3); k > 0; k-- {
					s.lines = append(s.lines, pickSKU())
				}
			}
			if maxExpiresIn >= 60 && chance(0.4) {
				s.expiresIn = 60 + rng.Int64N(maxExpiresIn-60+1)
			}
			payment(&s)
		case x < checkoutPercent+(100-checkoutPercent)*70/100:
			s.kind = kindHonest
			s.reqs = []params{{pickSKU(), pickQty()}}
			if chance(0.15) {
				r := other(s.reqs[0])
				s.reuse = &r
			}
			payment(&s)
		case x < checkoutPercent+(100-checkoutPercent)*85/100:
			s.kind = kindSameKey
			first := params{pickSKU(), pickQty()}
			s.reqs = []params{first}
			for k := 1 + rng.IntN(3); k > 0; k-- {
				if chance(0.5) {
					s.reqs = append(s.reqs, first)
				} else {
					s.reqs = append(s.reqs, other(first))
				}
			}
		default:
			s.kind = kindManyKeys
			sku := p.skus[1+rng.IntN(3)].name // a SKU with a per-buyer limit
			for k := 2 + rng.IntN(3); k > 0; k-- {
				s.reqs = append(s.reqs, params{sku, 1 + rng.Int64N(2)})
			}
		}
		if s.kind == kindSameKey || s.kind == kindManyKeys {
			s.think = between(100*time.Millisecond, 2*time.Second)
			for range s.reqs {
				s.payWon = append(s.payWon, chance(0.7))
			}
		}
		p.scripts = append(p.scripts, s)
	}
	sort.SliceStable(p.scripts, func(i, j int) bool { return p.scripts[i].at < p.scripts[j].at })

	// Kills: at least `kills`, one in each equal slot of [5 s, faultsOff − 5 s),
	// in the slot's middle 60% so two are never back to back.
	span := p.faultsOff - 10*time.Second
	if kills > 0 && span/time.Duration(kills) < 3*time.Second {
		return nil, fmt.Errorf("CHAOS_KILLS %d in %v: want at least 3 s between kills", kills, span)
	}
	for k := 0; k < kills; k++ {
		slot := span / time.Duration(kills)
		p.kills = append(p.kills, 5*time.Second+time.Duration(k)*slot+time.Duration(float64(slot)*(0.2+0.6*rng.Float64())))
	}

	// Fault phases: low at first, moderate after a few seconds, one storm
	// somewhere in the middle, off at faultsOff.
	ramp := min(10*time.Second, p.load/4)
	stormAt := between(p.load/4, p.faultsOff*3/4)
	stormLen := between(5*time.Second, max(5*time.Second, p.faultsOff/8))
	p.phases = []faultPhase{
		{0, "low", faultsLow, refundOutcomes},
		{ramp, "moderate", faultsModerate, refundOutcomes},
		{stormAt, "storm", faultsStorm, refundOutcomes},
		{min(stormAt+stormLen, p.faultsOff-time.Second), "moderate", faultsModerate, refundOutcomes},
		{p.faultsOff, "off", "", ""},
	}
	return p, nil
}

func (p *plan) summary() string {
	counts := map[string]int{}
	for _, s := range p.scripts {
		counts[s.kind.String()]++
		if s.kind == kindHonest || s.kind == kindCheckout {
			counts["pay "+[...]string{"now", "late", "never", "twice"}[s.pay]]++
			if s.reuse != nil {
				counts["key reuse"]++
			}
			if s.refund != refundNone {
				counts["refund "+s.refund.String()]++
			}
		}
		if s.kind == kindCheckout {
			for _, c := range s.shop[1:] {
				if !c.sameFields(s.shop[0]) {
					counts["checkout retry with other fields"]++
				}
			}
			if s.shopLate != nil {
				counts["checkout late retry"]++
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := fmt.Sprintf("%d scripts over %v, %d kills, faults off at %v:", len(p.scripts), p.load, len(p.kills), p.faultsOff)
	for _, k := range keys {
		out += fmt.Sprintf(" %s %d;", k, counts[k])
	}
	return out
}
